"""Super Search: building the query from flags or a search URL, and fetching every matching id.

Super Search answers at most 1,000 hits per page and refuses `_results_offset + _results_number`
beyond 10,000. To return every match however many there are, the date window is split in two
(bisected) until each part fits; the parts are half-open (`>=start`, `<end`) so each crash falls
in exactly one of them, and ids are also de-duplicated inside a window in case the data shifts
between pages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from lib.errors import UserError

SUPERSEARCH_PATH = "/api/SuperSearch/"
#: Hits per page (Super Search's maximum).
PAGE = 1_000
#: Super Search refuses `_results_offset + _results_number` above this (Elasticsearch's window).
WINDOW = 10_000
DEFAULT_PRODUCT = "Firefox"
DATE_WORDS = ("today", "yesterday", "thisweek", "thismonth")
#: Bounds used when a search URL leaves one side of the date range open.
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_ONE_MS = dt.timedelta(milliseconds=1)

Params = list[tuple[str, str]]


def parse_num(value: str | int | None) -> int | None:
    """--num: a positive integer, or `all` (None: no limit)."""
    if value is None or value == "":
        return 100
    text = str(value).strip().lower()
    if text == "all":
        return None
    try:
        number = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        number = 0
    if number < 1:
        raise UserError(f"--num must be a positive whole number or 'all' (got {value!r})")
    return number


def _parse_when(text: str, what: str) -> tuple[dt.datetime, bool]:
    """A date or date-time (UTC unless it says otherwise); True when it had no time part."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), True
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UserError(
            f"{what}: {text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC), False


def date_window(value: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """--date as a half-open UTC window [start, end)."""
    text = value.strip().lower()
    today = dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC)
    day = dt.timedelta(days=1)
    if text == "today":
        return today, today + day
    if text == "yesterday":
        return today - day, today
    if text == "thisweek":
        return today - 7 * day, today + day
    if text == "thismonth":
        return today - 30 * day, today + day
    if ".." in text:
        start_text, _, end_text = value.strip().partition("..")
        start, _ = _parse_when(start_text, "--date")
        end, date_only = _parse_when(end_text, "--date")
        if date_only:
            end += day  # START..END includes the whole END day
        if start >= end:
            raise UserError(f"--date {value!r}: the start must come before the end")
        return start, end
    if len(text) == 10:
        start, _ = _parse_when(value, "--date")
        return start, start + day
    raise UserError(
        f"--date must be YYYY-MM-DD, today, yesterday, thisweek, thismonth or START..END "
        f"(got {value!r})"
    )


def format_when(when: dt.datetime) -> str:
    """Day precision when the time is midnight (cache friendly), else milliseconds, in UTC."""
    when = when.astimezone(dt.UTC)
    if when.hour == when.minute == when.second == when.microsecond == 0:
        return when.strftime("%Y-%m-%d")
    return f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond // 1000:03d}Z"


def _url_window(values: list[str], now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start, end = _EARLIEST, now + dt.timedelta(days=1)
    for raw in values:
        for operator in (">=", "<=", ">", "<", "="):
            if raw.startswith(operator):
                when, date_only = _parse_when(raw[len(operator) :], "date in --url")
                break
        else:
            operator = "="
            when, date_only = _parse_when(raw, "date in --url")
        if operator in (">=", ">"):
            start = max(start, when + (_ONE_MS if operator == ">" else dt.timedelta(0)))
        elif operator in ("<", "<="):
            end = min(end, when + (_ONE_MS if operator == "<=" else dt.timedelta(0)))
        else:
            start = max(start, when)
            end = min(end, when + (dt.timedelta(days=1) if date_only else _ONE_MS))
    if start >= end:
        raise UserError("the dates in --url leave an empty date range")
    return start, end


@dataclass
class Query:
    """Super Search filters (without dates or paging), the date window, and the sort."""

    params: Params
    start: dt.datetime
    end: dt.datetime
    sort: str

    @property
    def newest_first(self) -> bool:
        return self.sort.startswith("-")


def build_query(
    *,
    url: str | None = None,
    signature: str | None = None,
    signature_contains: str | None = None,
    product: str | None = None,
    date: str | None = None,
    now: dt.datetime | None = None,
) -> Query:
    """Filters from a Crash Stats search URL (keeping its parameters, dropping those starting
    with `_` except `_sort`) with the flags applied on top. The product defaults to Firefox
    (`all` removes the filter) and the date to yesterday when neither the URL nor --date says."""
    now = now or dt.datetime.now(dt.UTC)
    params: Params = []
    if url:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UserError(f"--url must be a Crash Stats search URL (got {url!r})")
        params = [
            (key, value)
            for key, value in parse_qsl(parts.query, keep_blank_values=False)
            if not key.startswith("_") or key == "_sort"
        ]
    if signature and signature_contains:
        raise UserError("give --signature or --signature-contains, not both")
    if signature is not None or signature_contains is not None:
        text = signature if signature is not None else signature_contains
        if not text or not text.strip():
            raise UserError("the signature must not be empty")
        params = [(k, v) for k, v in params if k != "signature"]
        params.append(("signature", ("=" if signature is not None else "~") + text))
    if product is not None:
        if not product.strip():
            raise UserError("--product must not be empty (use 'all' to search every product)")
        params = [(k, v) for k, v in params if k != "product"]
        if product.strip().lower() != "all":
            params.append(("product", product.strip()))
    elif not any(k == "product" for k, _ in params):
        params.append(("product", DEFAULT_PRODUCT))
    url_dates = [v for k, v in params if k == "date"]
    params = [(k, v) for k, v in params if k != "date"]
    if date is not None:
        start, end = date_window(date, now)
    elif url_dates:
        start, end = _url_window(url_dates, now)
    else:
        start, end = date_window("yesterday", now)
    sorts = [v for k, v in params if k == "_sort"]
    params = [(k, v) for k, v in params if k != "_sort"]
    return Query(params=params, start=start, end=end, sort=sorts[0] if sorts else "-date")


@dataclass
class FetchStats:
    emitted: int = 0
    requests: int = 0
    windows: int = 0
    splits: int = 0
    duplicates_dropped: int = 0
    total: int | None = None


def fetch_ids(
    client: object,
    query: Query,
    num: int | None,
    emit: Callable[[str], None],
    *,
    on_total: Callable[[int], None] | None = None,
    on_page: Callable[[int], None] | None = None,
    reader_gone: Callable[[], bool] | None = None,
) -> FetchStats:
    """Emit up to `num` (None: all) matching crash ids, each once, bisecting the date window
    whenever more than 10,000 are needed from one window. Before each request `reader_gone` is
    asked whether anyone still reads the ids; if not, BrokenPipeError stops the fetch."""
    from lib.crashstats import ApiError

    stats = FetchStats()

    def search(start: dt.datetime, end: dt.datetime, offset: int, number: int) -> dict:
        params = [
            *query.params,
            ("date", f">={format_when(start)}"),
            ("date", f"<{format_when(end)}"),
            ("_columns", "uuid"),
            ("_sort", query.sort),
            ("_facets_size", "0"),
            ("_results_offset", str(offset)),
            ("_results_number", str(number)),
        ]
        if reader_gone is not None and reader_gone():
            raise BrokenPipeError("the reader of the crash ids went away")
        stats.requests += 1
        try:
            answer = client.get(SUPERSEARCH_PATH, params)
        except ApiError as error:
            if error.status == 403:
                raise UserError(
                    f"Super Search refused the token (HTTP 403: {error.message})"
                ) from None
            raise UserError(f"Super Search answered HTTP {error.status}: {error.message}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("hits"), list):
            raise UserError("Super Search answered without a list of hits")
        return answer

    def remaining() -> int | None:
        return None if num is None else num - stats.emitted

    def split(start: dt.datetime, end: dt.datetime, total: int) -> None:
        if end - start <= _ONE_MS:
            raise UserError(
                f"{total:,} crashes share the instant {format_when(start)}; more than "
                f"{WINDOW:,} cannot be fetched from one instant"
            )
        stats.splits += 1
        middle = start + (end - start) / 2
        middle -= dt.timedelta(microseconds=middle.microsecond % 1000)  # keep ms precision
        if middle <= start:
            middle = start + _ONE_MS
        left_total = int(search(start, middle, 0, 0).get("total") or 0)
        right_total = max(0, total - left_total)
        halves = [(start, middle, left_total), (middle, end, right_total)]
        if query.newest_first:
            halves.reverse()
        for part_start, part_end, part_total in halves:
            if remaining() == 0:
                return
            if part_total > 0:
                window(part_start, part_end, part_total)

    def window(start: dt.datetime, end: dt.datetime, hint: int | None) -> None:
        want = remaining()
        if hint is not None and hint > WINDOW and (want is None or want > WINDOW):
            split(start, end, hint)
            return
        stats.windows += 1
        seen: set[str] = set()
        offset = 0
        total: int | None = None
        while True:
            want = remaining()
            if want == 0:
                return
            limit = min(total, WINDOW) if total is not None else WINDOW
            number = min(PAGE, limit - offset)
            if want is not None:
                number = min(number, want)
            if number <= 0:
                return
            answer = search(start, end, offset, number)
            total = int(answer.get("total") or 0)
            if stats.total is None:
                stats.total = total
                if on_total:
                    on_total(total if num is None else min(total, num))
            if offset == 0 and total > WINDOW and (want is None or want > WINDOW):
                split(start, end, total)
                return
            hits = answer["hits"]
            emitted_before = stats.emitted
            for hit in hits:
                crash_id = hit.get("uuid") if isinstance(hit, dict) else None
                if not crash_id:
                    continue
                if crash_id in seen:
                    stats.duplicates_dropped += 1
                    continue
                seen.add(crash_id)
                emit(crash_id)
                stats.emitted += 1
                if remaining() == 0:
                    break
            if on_page:
                on_page(stats.emitted - emitted_before)
            offset += len(hits)
            if not hits or offset >= total:
                return

    window(query.start, query.end, None)
    return stats


def count_matches(client: object, query: Query) -> int:
    """Super Search's `total` for the query (one request, no hits)."""
    params = [
        *query.params,
        ("date", f">={format_when(query.start)}"),
        ("date", f"<{format_when(query.end)}"),
        ("_columns", "uuid"),
        ("_facets_size", "0"),
        ("_results_number", "0"),
    ]
    answer = client.get(SUPERSEARCH_PATH, params)
    return int(answer.get("total") or 0)


def _pipe_reader_gone(stream: object) -> bool:
    """True when `stream` is a pipe whose reading end is closed (e.g. `| head -1` is done):
    the next write would fail, so there is no point fetching more."""
    import os
    import select
    import stat

    try:
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, ValueError, OSError):
        return False


def run_fetch(
    host: str,
    query: Query,
    num: int | None,
    *,
    env_file: str | None,
    policy: object,
    progress_terminal: bool,
    progress_interval: float,
) -> FetchStats:
    """`crashes.fetch-ids`: ids to stdout, progress and counts to stderr."""
    import os
    import sys

    from lib.console import info
    from lib.crashstats import CrashStatsClient, RetriesExhausted, find_token
    from lib.progress import Progress

    token = find_token(env_file)
    progress = Progress(
        0,
        terminal=progress_terminal,
        interval=progress_interval,
        label="fetch-ids",
        unit="ids",
    )
    client = CrashStatsClient(host, token, policy=policy, on_retry=progress.note)
    filters = " ".join(f"{k}={v}" for k, v in query.params) or "no filters"
    info(
        f"searching {host}{SUPERSEARCH_PATH}: {filters}, date >= {format_when(query.start)} "
        f"and < {format_when(query.end)}, {'all' if num is None else num} ids"
    )
    out = sys.stdout
    buffer: list[str] = []

    def emit(crash_id: str) -> None:
        buffer.append(crash_id)

    def flush(count: int) -> None:
        if buffer:
            out.write("\n".join(buffer) + "\n")
            out.flush()
            buffer.clear()
        progress.advance(count)

    try:
        stats = fetch_ids(
            client,
            query,
            num,
            emit,
            on_total=progress.set_total,
            on_page=flush,
            reader_gone=lambda: _pipe_reader_gone(out),
        )
        flush(0)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as other Unix tools do.
        progress.stop()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return FetchStats()
    except RetriesExhausted as error:
        progress.stop()
        raise UserError(f"Super Search kept failing: {error}") from None
    finally:
        client.close()
    progress.stop()
    more = ""
    if stats.splits:
        more = f" (date window split {stats.splits} times into {stats.windows} parts)"
    total = "?" if stats.total is None else f"{stats.total:,}"
    info(
        f"fetched {stats.emitted:,} crash ids of {total} matching in {stats.requests} "
        f"requests{more}; retries: {client.retries}"
    )
    return stats
