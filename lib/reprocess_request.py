"""Asking for reprocessing without the permission: a bug holding the search and its count."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lib.errors import UserError

#: Bugzilla refuses summaries longer than this.
MAX_SUMMARY = 255
TEMPLATE = "reprocess_request.md.j2"


@dataclass
class RequestText:
    summary: str
    description: str
    total: int


def search_host(url: str) -> str:
    """The Crash Stats host of a search URL (scheme://host[:port])."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"--url must be a Crash Stats search URL (got {url!r})")
    return f"{parts.scheme}://{parts.netloc}"


def assumed_filters(url: str, product: list[str], start: str, end: str) -> list[tuple[str, str]]:
    """The filters the search URL leaves out and the defaults fill in (product, dates)."""
    parts = urlsplit(url.strip())
    keys = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    added: list[tuple[str, str]] = []
    if "product" not in keys:
        added += [("product", value) for value in product]
    if "date" not in keys:
        added += [("date", f">={start}"), ("date", f"<{end}")]
    return added


def pinned_url(url: str, product: list[str], start: str, end: str) -> str:
    """The search URL with the product and dates that were assumed made explicit, so that the
    same crashes are found when the request is handled days later."""
    parts = urlsplit(url.strip())
    added = assumed_filters(url, product, start, end)
    if not added:
        return url.strip()
    query = "&".join(part for part in (parts.query, urlencode(added)) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def summary_for(reason: str) -> str:
    summary = f"reprocess request: {' '.join(reason.split())}"
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1].rstrip() + "…"
    return summary


def build_request(
    client: object,
    url: str,
    reason: str,
    *,
    template_dir: str | None,
    now: dt.datetime | None = None,
) -> RequestText:
    """Count the search's matches with Super Search and render the bug's summary and text."""
    from lib.crashstats import ApiError, RetriesExhausted
    from lib.render import render
    from lib.supersearch import build_query, count_matches, format_when

    if not reason or not reason.strip():
        raise UserError("--reason is required: say why these crashes need reprocessing")
    if not url or not url.strip():
        raise UserError("--url is required: the Crash Stats search URL of the crashes")
    search_host(url)
    query = build_query(url=url, now=now)
    try:
        total = count_matches(client, query)
    except ApiError as error:
        raise UserError(
            f"Super Search refused the URL (HTTP {error.status}: {error.message})"
        ) from None
    except RetriesExhausted as error:
        raise UserError(f"Super Search kept failing: {error}") from None
    products = [value for key, value in query.params if key == "product"]
    when = now or dt.datetime.now(dt.UTC)
    start, end = format_when(query.start), format_when(query.end)
    added = assumed_filters(url, products, start, end)
    if added:
        from lib.console import info

        info(
            "note: the URL does not say "
            + " or ".join(dict.fromkeys(key for key, _ in added))
            + "; added to it: "
            + " ".join(f"{key}={value}" for key, value in added)
        )
    if total == 0:
        raise UserError(
            "the search matches no crash reports; nothing to reprocess, so no bug was filed "
            "(check the URL's filters)"
        )
    description = render(
        TEMPLATE,
        {
            "url": pinned_url(url, products, start, end),
            "reason": reason.strip(),
            "total": total,
            "product": ", ".join(products),
            "date_range": f"date >= {start} and < {end}",
            "counted_at": f"{when:%Y-%m-%d %H:%M} UTC",
        },
        template_dir,
    )
    return RequestText(summary_for(reason), description, total)
