"""Reading pip requirements files into exact pins, without installing anything.

Only an exact pin (`name==1.2.3` or `name===1.2.3`) names one version that can be checked
for known vulnerabilities. Everything else (a range, no version, an editable install, a URL
or path) is returned as "could not check", with the file and line, so that it is never
reported as clean. `-r FILE` includes are followed (relative to the including file);
`-c FILE` constraints and global options (`--index-url`, ...) are ignored; `--hash` options
and environment markers are allowed (every pin is checked, whatever its marker, conservatively;
the markers are kept on the Pin so that the report can show them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lib.errors import UserError

# An option after the requirement on the same line: `pkg==1 --hash=sha256:...`.
_TRAILING_OPTION = re.compile(r"\s+--?[A-Za-z]")
# A comment: `#` at the start or after whitespace (`#egg=` in a URL is not a comment).
_COMMENT = re.compile(r"(^|\s)#.*$")
_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s+|=)(?P<path>\S+)")
_CONSTRAINT = re.compile(r"^(?:-c|--constraint)(?:\s+|=)\S+")
_EDITABLE = re.compile(r"^(?:-e|--editable)(?:\s+|=)(?P<target>\S+)")


@dataclass
class Pin:
    """One exactly pinned requirement (name normalised as in PEP 503)."""

    name: str
    version: str
    sources: list[str] = field(default_factory=list)
    #: Environment markers written on it (`python_version < "3"`); checked whatever they say.
    markers: list[str] = field(default_factory=list)


@dataclass
class NotPinned:
    """A requirement whose version cannot be known from the file."""

    name: str | None
    requirement: str
    reason: str
    source: str


@dataclass
class RequirementsScan:
    pins: list[Pin] = field(default_factory=list)
    not_pinned: list[NotPinned] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations; returns (first line number, text)."""
    lines: list[tuple[int, str]] = []
    buffer = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if raw.endswith("\\"):
            buffer += raw[:-1] + " "
            continue
        lines.append((start, buffer + raw))
        buffer = ""
    if buffer:
        lines.append((start, buffer))
    return lines


def exact_version(requirement: object) -> str | None:
    """The version an exact pin names (`==1.2`, `===1.2`), else None."""
    for spec in requirement.specifier:  # type: ignore[attr-defined]
        if spec.operator == "===" or (spec.operator == "==" and "*" not in spec.version):
            return spec.version
    return None


def scan(paths: list[Path]) -> RequirementsScan:
    """Read every file (and its includes) once; a missing or malformed file is a UserError."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    result = RequirementsScan()
    by_key: dict[tuple[str, str], Pin] = {}
    seen: set[Path] = set()

    def read(path: Path, included_from: str | None) -> None:
        resolved = path.resolve()
        if resolved in seen:
            return
        seen.add(resolved)
        where = f" (included from {included_from})" if included_from else ""
        if resolved.is_dir():
            raise UserError(f"requirements file {path} is a directory, not a file{where}", code=2)
        if not resolved.is_file():
            raise UserError(f"requirements file {path} not found{where}", code=2)
        try:
            text = resolved.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read requirements file {path}: {error}", code=2) from None
        result.files.append(str(path))
        for number, line in _logical_lines(text):
            source = f"{path}:{number}"
            line = _COMMENT.sub("", line).strip()
            if not line:
                continue
            include = _INCLUDE.match(line)
            if include:
                read(resolved.parent / include.group("path"), source)
                continue
            if _CONSTRAINT.match(line):
                continue
            editable = _EDITABLE.match(line)
            if editable:
                result.not_pinned.append(
                    NotPinned(None, line, "editable install, not a PyPI release", source)
                )
                continue
            if line.startswith("-"):
                continue  # a global option: --index-url, --find-links, --pre, ...
            option = _TRAILING_OPTION.search(line)
            requirement_text = line[: option.start()] if option else line
            try:
                requirement = Requirement(requirement_text)
            except InvalidRequirement:
                if "/" in requirement_text or requirement_text.startswith("."):
                    result.not_pinned.append(
                        NotPinned(
                            None, requirement_text, "a path or URL, not a PyPI release", source
                        )
                    )
                    continue
                raise UserError(
                    f"{source}: cannot parse requirement {requirement_text!r}", code=2
                ) from None
            name = canonicalize_name(requirement.name)
            if requirement.url:
                result.not_pinned.append(
                    NotPinned(
                        name, requirement_text, "direct URL reference, not a PyPI release", source
                    )
                )
                continue
            version = exact_version(requirement)
            if version is None:
                result.not_pinned.append(
                    NotPinned(name, requirement_text, "not pinned to one version (==)", source)
                )
                continue
            try:
                Version(version)
            except InvalidVersion:
                result.not_pinned.append(
                    NotPinned(name, requirement_text, "not a PEP 440 version", source)
                )
                continue
            key = (name, version)
            if key in by_key:
                by_key[key].sources.append(source)
            else:
                by_key[key] = Pin(name=name, version=version, sources=[source])
                result.pins.append(by_key[key])
            marker = str(requirement.marker) if requirement.marker else ""
            if marker and marker not in by_key[key].markers:
                by_key[key].markers.append(marker)

    for path in paths:
        read(path, None)
    return result
