"""Crash ids: recognising them in what users paste, and reading them line by line from files.

A crash id is `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxYYMMDD` (lowercase hex, the last six characters the
submission date). Users paste them bare, as `bp-<id>` (the form crash reporters show), or as a
report URL (`https://crash-stats.mozilla.org/report/index/<id>`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

#: The crash id format used by Socorro, Antenna and crashstats-tools.
CRASH_ID_RE = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{6}[0-9]{6}$")

_REPORT_URL_RE = re.compile(r"^https?://[^/\s]+(?::\d+)?/report/index/([^/?#\s]+)/?(?:[?#]\S*)?$")

#: Rulesets the Reprocessing API accepts after `<crash id>:`.
VALID_RULESETS = ("default", "regenerate_signature")


def parse_crash_id(text: str) -> str | None:
    """The crash id in `text` (bare, `bp-<id>` or a report URL), or None when it is not one.

    Surrounding whitespace and a UTF-8 byte order mark are ignored.
    """
    value = text.strip()
    if len(value) == 36 and CRASH_ID_RE.match(value):
        return value  # the common case, checked first: inputs can hold millions of lines
    value = value.lstrip("\ufeff").strip()
    match = _REPORT_URL_RE.match(value)
    if match:
        value = match.group(1)
    if value.startswith("bp-"):
        value = value[3:]
    return value if CRASH_ID_RE.match(value) else None


@dataclass(frozen=True)
class InputLine:
    """One meaningful line of crash id input: its 1-based number, raw text, and the id if valid."""

    number: int
    text: str
    crash_id: str | None


def read_lines(stream: IO[str] | Iterable[str]) -> Iterator[InputLine]:
    """Yield the non-blank, non-comment lines of `stream`, parsed, one at a time (flat memory).

    Tolerates a UTF-8 byte order mark, CRLF line ends, surrounding whitespace, blank lines and
    `#` comments (whole-line, or after the id: `<id>  # why`).
    """
    for number, raw in enumerate(stream, start=1):
        text = raw.lstrip("\ufeff") if number == 1 else raw
        if "#" in text:
            text = text.split("#", 1)[0]
        text = text.strip()
        if not text:
            continue
        yield InputLine(number, text, parse_crash_id(text))
