"""A local OSV-format advisory database (e.g. the PyPA advisory database), for offline checks.

The database is a directory tree of OSV records, one per file, in YAML (`*.yaml`, `*.yml`, as
in the PyPA database) or JSON (`*.json`, as in OSV's exports). Only PyPI entries count.
A version is affected by an `affected[]` entry when it is listed in `versions`, or when an
ECOSYSTEM (or SEMVER) range's events say so (OSV's algorithm: events sorted by version;
`introduced` opens, `fixed` closes at that version, `last_affected` closes after it).
Withdrawn records are ignored. Versions are compared with `packaging` (PEP 440), names
normalised as in PEP 503. A range naming a version that is not PEP 440 cannot be evaluated:
`undecided()` names such advisories, so that the pin is listed as not checked, never clean.

Reading ~2,700 YAML files takes seconds, so the parsed index is cached (JSON, keyed by the
database's path and a fingerprint of every file's name, size and mtime) and reused until the
database changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.errors import UserError

#: Bump when the cached index's shape changes.
INDEX_FORMAT = 2
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Match:
    """One advisory that affects one pinned version."""

    id: str
    aliases: list[str]
    summary: str
    fixed_versions: list[str]


@dataclass
class AdvisoryDatabase:
    path: Path
    #: normalised package name -> compact affected entries (see _compact_entry)
    index: dict[str, list[dict[str, Any]]]
    files: int
    unreadable: list[str] = field(default_factory=list)
    from_cache: bool = False

    def matches(self, name: str, version: str) -> list[Match]:
        """Advisories affecting `name==version`, one per advisory id, sorted by id."""
        from packaging.utils import canonicalize_name
        from packaging.version import InvalidVersion, Version

        try:
            installed = Version(version)
        except InvalidVersion:
            return []
        found: dict[str, Match] = {}
        for entry in self.index.get(canonicalize_name(name), []):
            if not _affects(entry, installed):
                continue
            fixed = _relevant_fixes(entry, installed)
            match = found.get(entry["id"])
            if match is None:
                found[entry["id"]] = Match(
                    id=entry["id"],
                    aliases=list(entry["aliases"]),
                    summary=entry["summary"],
                    fixed_versions=fixed,
                )
            else:
                match.fixed_versions = _sorted_versions(set(match.fixed_versions) | set(fixed))
        return [found[key] for key in sorted(found)]

    def undecided(self, name: str, version: str) -> list[tuple[str, str]]:
        """(advisory id, version text) for each advisory that could not be evaluated for
        `name==version` because one of its ranges names a version that is not PEP 440 (and
        nothing else in it matched): the pin may or may not be affected."""
        from packaging.utils import canonicalize_name
        from packaging.version import InvalidVersion, Version

        try:
            installed = Version(version)
        except InvalidVersion:
            return []
        out: dict[str, str] = {}
        for entry in self.index.get(canonicalize_name(name), []):
            if entry["id"] in out or _affects(entry, installed):
                continue
            bad = _unparsable_range_version(entry)
            if bad is not None:
                out[entry["id"]] = bad
        return sorted(out.items())


def _unparsable_range_version(entry: dict[str, Any]) -> str | None:
    """The first range version of an entry that is not a PEP 440 version, if any."""
    from packaging.version import InvalidVersion, Version

    for events in entry["ranges"]:
        for kind, value in events:
            if kind == "introduced" and value == "0":
                continue
            try:
                Version(value)
            except InvalidVersion:
                return value
    return None


def _version_key(text: str) -> tuple[int, Any]:
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(text))
    except InvalidVersion:
        return (1, text)


def _sorted_versions(values: set[str] | list[str]) -> list[str]:
    return sorted(set(values), key=_version_key)


def _affects(entry: dict[str, Any], installed: Any) -> bool:
    listed = entry.get("_listed_versions")
    if listed is None:  # built once per entry and process; Version hashes as it compares
        listed = entry["_listed_versions"] = {_parse_or_text(v) for v in entry["versions"]}
    if installed in listed or str(installed) in listed:
        return True
    return any(_in_range(events, installed) for events in entry["ranges"])


def _parse_or_text(text: str) -> Any:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return text


def _in_range(events: list[list[str]], installed: Any) -> bool:
    """OSV range evaluation over [kind, version] events; unparsable versions: not evaluated."""
    from packaging.version import InvalidVersion, Version

    parsed = []
    for kind, value in events:
        if kind == "introduced" and value == "0":
            parsed.append((Version("0"), 0, kind))
            continue
        try:
            # At an equal version, "introduced" is applied before the closing events.
            parsed.append((Version(value), 0 if kind == "introduced" else 1, kind))
        except InvalidVersion:
            return False
    affected = False
    for version, _order, kind in sorted(parsed, key=lambda item: (item[0], item[1])):
        if kind == "introduced" and installed >= version:
            affected = True
        elif kind == "fixed" and installed >= version:
            affected = False
        elif kind == "last_affected" and installed > version:
            affected = False
        elif kind == "limit" and installed >= version:
            affected = False
    return affected


def _relevant_fixes(entry: dict[str, Any], installed: Any) -> list[str]:
    """Fixed versions above the installed one (all of them when none is above)."""
    from packaging.version import InvalidVersion, Version

    fixes = [value for events in entry["ranges"] for kind, value in events if kind == "fixed"]
    above = []
    for value in fixes:
        try:
            if Version(value) > installed:
                above.append(value)
        except InvalidVersion:
            continue
    return _sorted_versions(above or fixes)


def _summary(record: dict[str, Any], limit: int = 200) -> str:
    """The record's summary, else the start of its details (the PyPA database has no summary)."""
    text = " ".join(str(record.get("summary") or record.get("details") or "").split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 3)
    return text[: cut if cut > limit // 2 else limit - 3] + "..."


def _compact_entries(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(normalised name, compact entry) for each PyPI `affected[]` of one OSV record."""
    from packaging.utils import canonicalize_name

    if record.get("withdrawn"):
        return []
    advisory_id = str(record.get("id") or "")
    if not advisory_id:
        raise ValueError("no id")
    out = []
    for affected in record.get("affected") or []:
        package = affected.get("package") or {}
        if str(package.get("ecosystem", "")).split(":")[0].lower() != "pypi":
            continue
        name = package.get("name")
        if not name:
            continue
        ranges = []
        for rng in affected.get("ranges") or []:
            if str(rng.get("type", "")).upper() not in ("ECOSYSTEM", "SEMVER"):
                continue  # GIT ranges name commits, not releases
            events = []
            for event in rng.get("events") or []:
                for kind in ("introduced", "fixed", "last_affected", "limit"):
                    if kind in event:
                        events.append([kind, str(event[kind])])
            if events:
                ranges.append(events)
        out.append(
            (
                canonicalize_name(str(name)),
                {
                    "id": advisory_id,
                    "aliases": [str(a) for a in record.get("aliases") or []],
                    "summary": _summary(record),
                    "ranges": ranges,
                    "versions": [str(v) for v in affected.get("versions") or []],
                },
            )
        )
    return out


def _advisory_files(root: Path) -> list[Path]:
    files = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in filenames:
            if filename.endswith(_SUFFIXES):
                files.append(Path(directory) / filename)
    files.sort()
    return files


def _fingerprint(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256(f"{INDEX_FORMAT}\0{root}\0".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _load_record(path: Path) -> Any:
    if path.suffix == ".json":
        with path.open("rb") as handle:
            return json.load(handle)
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 (a safe loader)


def _parse_files(root: Path, files: list[Path]) -> tuple[list[tuple[str, Any]], list[str]]:
    """(name, entry) pairs and unreadable-file notes for some files, in file order."""
    pairs: list[tuple[str, Any]] = []
    unreadable: list[str] = []
    for path in files:
        try:
            record = _load_record(path)
            if not isinstance(record, dict):
                raise ValueError("not an OSV record")
            pairs += _compact_entries(record)
        except Exception as error:  # noqa: BLE001 (any broken file is reported, not fatal)
            message = (str(error).splitlines() or [type(error).__name__])[0][:120]
            unreadable.append(f"{path.relative_to(root)}: {message}")
    return pairs, unreadable


def build_index(root: Path, files: list[Path]) -> tuple[dict[str, list[Any]], list[str]]:
    """Parse every record (on every CPU for a large database); index plus unreadable files."""
    workers = min(os.cpu_count() or 1, 4)
    chunks: list[tuple[list[tuple[str, Any]], list[str]]]
    if workers > 1 and len(files) >= 500:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        size = -(-len(files) // workers)
        parts = [files[i : i + size] for i in range(0, len(files), size)]
        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                chunks = list(pool.map(_parse_files, [root] * len(parts), parts))
        except (OSError, ValueError, RuntimeError):  # no fork here: parse in this process
            chunks = [_parse_files(root, files)]
    else:
        chunks = [_parse_files(root, files)]
    index: dict[str, list[Any]] = {}
    unreadable: list[str] = []
    for pairs, broken in chunks:  # chunks are contiguous, so file order is kept
        for name, entry in pairs:
            index.setdefault(name, []).append(entry)
        unreadable += broken
    return index, unreadable


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "releng-tasks" / "advisory-index"


def load(root: Path, cache_dir: Path | None = None) -> AdvisoryDatabase:
    """Index the database at `root` (from the cache when the files did not change)."""
    root = root.resolve()
    if not root.is_dir():
        raise UserError(f"advisory database {root} is not a directory", code=2)
    files = _advisory_files(root)
    if not files:
        raise UserError(
            f"advisory database {root} holds no OSV records (*.yaml, *.yml, *.json)", code=2
        )
    fingerprint = _fingerprint(root, files)
    cache_dir = cache_dir or default_cache_dir()
    cache_file = cache_dir / (hashlib.sha256(str(root).encode()).hexdigest()[:24] + ".json")
    try:
        with cache_file.open(encoding="utf-8") as handle:
            cached = json.load(handle)
        if cached.get("fingerprint") == fingerprint:
            return AdvisoryDatabase(
                path=root,
                index=cached["index"],
                files=len(files),
                unreadable=cached["unreadable"],
                from_cache=True,
            )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    index, unreadable = build_index(root, files)
    _write_cache(cache_file, {"fingerprint": fingerprint, "index": index, "unreadable": unreadable})
    return AdvisoryDatabase(path=root, index=index, files=len(files), unreadable=unreadable)


def _write_cache(cache_file: Path, payload: dict[str, Any]) -> None:
    """Atomic write; a cache that cannot be written only costs time."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(payload, handle, separators=(",", ":"))
        os.replace(temporary, cache_file)
    except OSError:
        pass
