"""Deploy tag schemes: integer tags (NNN) and date tags (YYYY.MM.DD, -2, -3 ...), with a prefix.

Tags are ordered in the scheme's own order (integers numerically, dates by date then suffix),
never lexically, and tags of other shapes are ignored.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from lib.errors import UserError

SCHEMES = ("integer", "date")


def today() -> datetime.date:
    """The day date tags are named after: UTC, so colleagues in other timezones (and a deploy
    prepared before local midnight and tagged after it) agree on the tag."""
    return datetime.datetime.now(datetime.UTC).date()


@dataclass(frozen=True)
class TagScheme:
    kind: str
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SCHEMES:
            raise UserError(
                f"deploy.tag_scheme must be one of {', '.join(SCHEMES)} (got {self.kind!r})"
            )
        if self.prefix and not _usable_prefix(self.prefix):
            raise UserError(f"deploy.tag_prefix {self.prefix!r} is not usable in a tag name")

    @property
    def _pattern(self) -> re.Pattern[str]:
        # [0-9], not \d: \d also matches other scripts' digits ("1٠٠٠" is no deploy tag).
        body = (
            r"(0|[1-9][0-9]*)"
            if self.kind == "integer"
            else r"([0-9]{4})\.([0-9]{2})\.([0-9]{2})(?:-([0-9]+))?"
        )
        return re.compile(re.escape(self.prefix) + body)

    def sort_key(self, name: str) -> tuple[Any, ...] | None:
        """The tag's position in the scheme's order, or None when it is not a tag of this scheme."""
        match = self._pattern.fullmatch(name)
        if not match:
            return None
        if self.kind == "integer":
            return (int(match.group(1)),)
        try:
            day = datetime.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return None
        suffix = match.group(4)
        if suffix is not None and int(suffix) < 2:
            return None  # "-1" and "-0" are not part of the scheme: the second deploy is "-2"
        return (day, int(suffix) if suffix else 1)

    def is_valid(self, name: str) -> bool:
        return self.sort_key(name) is not None

    def describe(self) -> str:
        shape = "NNN" if self.kind == "integer" else "YYYY.MM.DD or YYYY.MM.DD-N"
        return f"{self.prefix}{shape}"

    def previous(self, tags: list[str]) -> str | None:
        """The highest tag of this scheme among `tags`, or None (first deploy)."""
        keyed = [(key, tag) for tag in tags if (key := self.sort_key(tag)) is not None]
        return max(keyed)[1] if keyed else None

    def next(self, previous: str | None, existing: list[str], today: datetime.date) -> str:
        """The tag after `previous`: previous + 1, or today's date with the next free suffix."""
        if self.kind == "integer":
            number = self.sort_key(previous)[0] + 1 if previous else 1
            return f"{self.prefix}{number}"
        base = f"{self.prefix}{today:%Y.%m.%d}"
        if previous is not None and self.sort_key(previous)[0] > today:
            raise UserError(
                f"the latest deploy tag {previous} is dated after today ({today:%Y.%m.%d}); "
                f"check the machine's clock"
            )
        used = [key[1] for tag in existing if (key := self.sort_key(tag)) and key[0] == today]
        if not used:
            return base
        return f"{base}-{max(used) + 1}"


def _usable_prefix(prefix: str) -> bool:
    """Whether tags made of `prefix` and a number or date are valid git ref names
    (`git check-ref-format`): no "..", "//", ".lock" or "."-led path component, and only
    letters, digits, ".", "_", "-" and "/"."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", prefix):
        return False
    name = f"{prefix}1"
    if ".." in name or "//" in name:
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))


def scheme_from_config(c: Any) -> TagScheme:
    from lib.settings import text_setting

    return TagScheme(
        text_setting(c, "deploy.tag_scheme"), text_setting(c, "deploy.tag_prefix", required=False)
    )
