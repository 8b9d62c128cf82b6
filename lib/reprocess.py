"""Submitting crash ids to the Reprocessing API in chunks, with a journal that makes reruns resume.

Flow: the input (a file, stdin or ids given on the command line) is read once, line by line, and
spooled into an SQLite journal: one row per distinct valid id, in input order (duplicates are
dropped by an on-disk sort, so memory stays flat for millions of ids). Only when the whole input is
valid (or `--skip-invalid`) and under the `--allow-many` limit is anything sent.

The journal also keeps a ledger: every id the server accepted (and every id it refused under
`--skip-refused`) while this journal existed. Each accepted chunk's ids are committed to the
ledger before the next chunk is sent, so a rerun after any failure, Ctrl-C or kill -9 re-sends at
most the chunk that was in flight. A rerun whose input changed (ids added, removed, reordered; a
regenerated `fetch-ids` list) carries the ledger over to the new input: ids already accepted are
skipped, new ones are sent, ids no longer in the input are not. A journal belongs to one host and
one ruleset and is never mixed with another. It is removed once every id has been handled.

Which journal a run uses: `--journal PATH`; else for `--input FILE` the file
`<file>.reprocess-journal` beside it (or, in a directory that is not writable, a file in the cache
directory named after the file's path); else (stdin, `--crash-id`) the unfinished journal in the
cache directory of the same host, ruleset and kind of input that shares the most accepted ids
with this input, or a new one when none does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lib.console import info
from lib.crashids import VALID_RULESETS, InputLine, read_lines
from lib.errors import UserError
from lib.progress import Progress

#: Without --allow-many, more distinct ids than this are refused (Crash Stats' own rule).
MANY_IDS = 10_000
#: Invalid lines shown before the rest are only counted.
INVALID_SHOWN = 20
_BATCH = 5_000
#: 2: a ledger of accepted ids (any order). 1: accepted chunks as a prefix of the input
#: (still read, and converted when such a journal is resumed).
_JOURNAL_VERSION = "2"
_KNOWN_VERSIONS = ("1", "2")
REPROCESSING_PATH = "/api/Reprocessing/"


@dataclass
class SpoolStats:
    """What reading the input found."""

    lines: int = 0
    distinct: int = 0
    duplicates: int = 0
    invalid: int = 0
    invalid_shown: list[InputLine] = field(default_factory=list)
    digest: str = ""


# A row of `ids` still to send: neither accepted nor refused (primary-key probes, no scan).
_PENDING = (
    "NOT EXISTS (SELECT 1 FROM accepted a WHERE a.crash_id = ids.crash_id) "
    "AND NOT EXISTS (SELECT 1 FROM refused r WHERE r.crash_id = ids.crash_id)"
)


class Journal:
    """An SQLite file: the current input's distinct ids in order, and the ledger of the ids the
    server accepted (or refused) for this host and ruleset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS ids (seq INTEGER PRIMARY KEY, crash_id TEXT NOT NULL)"
        )
        # Every id accepted while this journal existed, whether or not still in the input.
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS accepted (crash_id TEXT PRIMARY KEY) WITHOUT ROWID"
        )
        # Ids the server refused with 400 and --skip-refused left out.
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS refused (crash_id TEXT PRIMARY KEY, message TEXT) "
            "WITHOUT ROWID"
        )
        # One row per accepted chunk (for the chunk numbers of a dry run).
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS chunks (number INTEGER PRIMARY KEY, size INTEGER, "
            "accepted_at REAL)"
        )

    def close(self) -> None:
        self.db.close()

    def get(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set(self, **values: object) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(key, str(value)) for key, value in values.items()],
        )

    @property
    def accepted_chunks(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    @property
    def total(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM ids").fetchone()[0])

    @property
    def last_accepted_at(self) -> float | None:
        """When the server last accepted a chunk of this journal (epoch seconds), if ever."""
        value = self.db.execute("SELECT MAX(accepted_at) FROM chunks").fetchone()[0]
        return float(value) if value is not None else None

    def done_in_input(self) -> tuple[int, int]:
        """(ids of the input already accepted, ids of the input refused and not accepted)."""
        ledger = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM accepted) OR EXISTS (SELECT 1 FROM refused)"
        ).fetchone()[0]
        if not ledger:
            return 0, 0
        row = self.db.execute(
            "SELECT COALESCE(SUM(a), 0), COALESCE(SUM(r AND NOT a), 0) FROM ("
            "SELECT EXISTS (SELECT 1 FROM accepted x WHERE x.crash_id = ids.crash_id) AS a, "
            "EXISTS (SELECT 1 FROM refused y WHERE y.crash_id = ids.crash_id) AS r FROM ids)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def pending_chunks(self, size: int) -> Iterator[list[str]]:
        """The ids of each chunk still to send, in input order, read one chunk at a time."""
        after = 0
        while True:
            rows = self.db.execute(
                f"SELECT seq, crash_id FROM ids WHERE seq > ? AND {_PENDING} ORDER BY seq LIMIT ?",
                (after, size),
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [row[1] for row in rows]

    def refused_ids(self, limit: int) -> list[str]:
        """Ids of the input recorded as refused, in input order."""
        rows = self.db.execute(
            "SELECT crash_id FROM ids WHERE EXISTS (SELECT 1 FROM refused r WHERE "
            "r.crash_id = ids.crash_id) ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [row[0] for row in rows]

    def mark_refused(self, crash_ids: list[str], message: str) -> None:
        """Record ids the server refused (committed at once, before the rest is resent)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO refused (crash_id, message) VALUES (?, ?)",
            [(crash_id, message) for crash_id in crash_ids],
        )

    def mark_accepted(self, crash_ids: list[str]) -> None:
        """Record one accepted chunk's ids, in one transaction: all of them or none."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR IGNORE INTO accepted (crash_id) VALUES (?)",
                [(crash_id,) for crash_id in crash_ids],
            )
            self.db.execute(
                "INSERT INTO chunks (size, accepted_at) VALUES (?, ?)",
                (len(crash_ids), time.time()),
            )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


def spool(lines: Iterable[str], journal: Journal) -> SpoolStats:
    """Read every line into the journal's id table; count duplicates and invalid lines.

    Valid ids are appended to a scratch table as they come, then copied once into `ids`
    grouped by id in order of first appearance: SQLite's external sort does the
    de-duplication on disk, several times faster than a unique index on random ids.
    """
    stats = SpoolStats()
    digest = hashlib.sha256()
    batch: list[tuple[str]] = []
    valid = 0
    db = journal.db
    db.execute("PRAGMA journal_mode=OFF")  # a spool that fails is thrown away whole
    db.execute("PRAGMA synchronous=OFF")
    db.execute("CREATE TABLE spool (crash_id TEXT NOT NULL)")
    db.execute("BEGIN")
    for line in read_lines(lines):
        stats.lines += 1
        if line.crash_id is None:
            stats.invalid += 1
            if len(stats.invalid_shown) < INVALID_SHOWN:
                stats.invalid_shown.append(line)
            continue
        digest.update(line.crash_id.encode() + b"\n")
        batch.append((line.crash_id,))
        valid += 1
        if len(batch) >= _BATCH:
            db.executemany("INSERT INTO spool (crash_id) VALUES (?)", batch)
            batch.clear()
    if batch:
        db.executemany("INSERT INTO spool (crash_id) VALUES (?)", batch)
    db.execute(
        "INSERT INTO ids (crash_id) SELECT crash_id FROM spool GROUP BY crash_id "
        "ORDER BY MIN(rowid)"
    )
    db.execute("DROP TABLE spool")
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    stats.distinct = journal.total
    stats.duplicates = valid - stats.distinct
    stats.digest = digest.hexdigest()
    return stats


def default_cache_dir(configured: str | None) -> Path:
    """crashes.cache_dir, else $XDG_CACHE_HOME/releng-tasks, else ~/.cache/releng-tasks."""
    if configured:
        return Path(os.path.expanduser(configured)).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "releng-tasks"


def same_ruleset(one: str, other: str) -> bool:
    """No ruleset and `default` are the same to the server (it defaults to `default`)."""
    return (one or "default") == (other or "default")


def _journal_prefix(host: str, ruleset: str, source: str) -> str:
    """File name prefix of the cache journals of one host, ruleset and kind of input."""
    key = f"{host}\n{ruleset or 'default'}\n{source}"
    return f"reprocess-{hashlib.sha256(key.encode()).hexdigest()[:16]}-"


def input_journal_path(cache_dir: Path, input_path: Path) -> Path:
    """The cache journal of an input file whose directory is not writable (keyed by its path)."""
    digest = hashlib.sha256(str(input_path).encode()).hexdigest()[:16]
    return cache_dir / f"reprocess-input-{digest}.sqlite"


@dataclass
class Changes:
    """How the input differs from the one the journal was written for."""

    skipped: int = 0  # ids of the input already accepted: not sent again
    refused: int = 0  # ids of the input refused earlier (--skip-refused): not sent again
    new: int = 0  # ids not in the previous input, to send
    still: int = 0  # ids of the previous input not accepted yet, to send
    removed: int = 0  # ids of the previous input that are no longer in it: not sent

    def describe(self, path: Path, age: str) -> str:
        parts = [
            f"{self.skipped:,} ids already accepted are skipped",
            f"{self.new:,} new ids to send",
        ]
        if self.still:
            parts.append(f"{self.still:,} still to send from before")
        if self.refused:
            parts.append(f"{self.refused:,} refused by the server stay out")
        parts.append(f"{self.removed:,} no longer in the input are not sent")
        return (
            f"resuming from {path}{age}; the input changed since the journal was written: "
            f"{', '.join(parts)} (--restart sends everything)"
        )


@dataclass
class Plan:
    """A prepared run: the journal (spooled or resumed) and what reading the input found."""

    journal: Journal
    stats: SpoolStats
    resumed: bool
    temporary: bool = False
    #: Where the journal is (or, for a dry run's temporary copy, would be) kept.
    path: Path | None = None
    changes: Changes | None = None
    #: Under --restart: how many accepted ids the discarded journal held.
    discarded: int | None = None
    #: The journal's lock, held from before it is read until the run ends.
    locks: list[IO[bytes]] = field(default_factory=list)

    def close(self) -> None:
        """Close the journal and release its lock (a rerun can then take it)."""
        self.journal.close()
        for handle in self.locks:
            handle.close()
        self.locks.clear()

    def discard(self) -> None:
        """Close and delete the journal (after success, or a dry run's temporary spool)."""
        _unlink_sqlite(self.journal.path)
        self.close()
        if self.temporary:
            _remove_dir(self.journal.path.parent)


def _unlink_sqlite(path: Path, *, main: bool = True) -> None:
    for suffix in ("", "-wal", "-shm") if main else ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def prepare(
    lines: Iterable[str],
    *,
    source: str,
    journal_path: Path | None,
    cache_dir: Path,
    host: str,
    ruleset: str,
    skip_invalid: bool,
    allow_many: bool,
    restart: bool,
    dry_run: bool,
) -> Plan:
    """Spool and check the input, then open its journal: resumed, carried over to a changed
    input, or new. Sends nothing.

    `journal_path` None means: stdin or --crash-id, whose journals are kept in `cache_dir` (see
    the module's docstring). Outside a dry run the journal is locked until the plan is closed.
    Under `dry_run` nothing is created or changed outside a temporary directory.
    """
    if ruleset and ruleset not in VALID_RULESETS:
        raise UserError(f"--ruleset must be one of {', '.join(VALID_RULESETS)} (got {ruleset!r})")
    spool_dir = Path(tempfile.mkdtemp(prefix="crashes-dry-")) if dry_run else None
    target_dir = spool_dir or (journal_path.parent if journal_path else cache_dir)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        if not journal_path:
            cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=target_dir, prefix=".spool-", suffix=".sqlite")
        os.close(handle)
    except OSError as error:
        raise UserError(f"cannot write the journal in {target_dir}: {error.strerror}") from None
    temp_path = Path(temp_name)
    spooled = Journal(temp_path)
    keep_spool = False
    locks: list[IO[bytes]] = []
    try:
        stats = spool(lines, spooled)
        _check_input(stats, source, skip_invalid, allow_many)
        if journal_path:
            final, meta = journal_path, _existing_journal(journal_path, host, ruleset, restart)
        else:
            final, meta = _find_cache_journal(
                cache_dir, spooled, stats.digest, host, ruleset, source
            )
        version = meta.get("version") if meta else None
        if version and not dry_run:
            locks.append(_lock(final))  # before it is read: no other run may change it now
        if version == _JOURNAL_VERSION and not restart and meta.get("input") == stats.digest:
            return Plan(Journal(final), stats, resumed=True, path=final, locks=locks)
        changes = discarded = None
        if version and restart:
            discarded = _count_ledger(spooled, final, version)
        elif version:
            changes = _carry_over(spooled, final, version)
            if meta.get("input") == stats.digest:
                changes = None  # the same input, in a journal of the previous format
        spooled.set(
            version=_JOURNAL_VERSION,
            input=stats.digest,
            host=host,
            ruleset=ruleset,
            source=source,
            duplicates=stats.duplicates,
            invalid=stats.invalid,
            created_at=meta.get("created_at", time.time()) if meta and not restart else time.time(),
            updated_at=time.time(),
        )
        if dry_run:
            keep_spool = True
            return Plan(
                spooled,
                stats,
                resumed=bool(meta and not restart),
                temporary=True,
                path=final,
                changes=changes,
                discarded=discarded,
            )
        spooled.close()
        if version:
            # Held under the lock: fold the old journal's WAL into it (nothing accepted is lost
            # if we are killed now), then put the new journal in its place.
            _checkpoint(final)
            _unlink_sqlite(final, main=False)
            os.replace(temp_path, final)
        else:
            _put_new(temp_path, final)
        _unlink_sqlite(temp_path)
        locks.append(_lock(final))
        return Plan(
            Journal(final),
            stats,
            resumed=bool(meta and not restart),
            path=final,
            changes=changes,
            discarded=discarded,
            locks=locks,
        )
    except BaseException:
        for handle in locks:
            handle.close()
        raise
    finally:
        if not keep_spool:
            with contextlib.suppress(sqlite3.Error):
                spooled.close()
            _unlink_sqlite(temp_path)
            if spool_dir:
                _remove_dir(spool_dir)


def _put_new(temp_path: Path, final: Path) -> None:
    """Move a new journal into place, never over a journal another run has just made."""
    try:
        os.link(temp_path, final)
    except FileExistsError:
        raise UserError(
            f"another crashes.reprocess is already sending this input (journal {final}); "
            f"wait for it, or stop it and rerun"
        ) from None
    except OSError:  # a file system without hard links: check, then rename
        if final.exists():
            raise UserError(
                f"another crashes.reprocess is already sending this input (journal {final}); "
                f"wait for it, or stop it and rerun"
            ) from None
        os.replace(temp_path, final)


def _read_meta(path: Path) -> dict[str, str] | None:
    """A journal's meta table, read without changing the file; None if it is not a journal."""
    from urllib.parse import quote

    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT key, value FROM meta").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    meta = dict(rows)
    return meta if meta.get("version") in _KNOWN_VERSIONS else None


def _existing_journal(path: Path, host: str, ruleset: str, restart: bool) -> dict[str, str] | None:
    """The meta of the journal at a fixed path (None: there is none yet). A file that is not a
    journal is refused; so is a journal of another host or ruleset unless it is to be discarded
    (`restart`): its ledger is never mixed in."""
    if not path.exists():
        return None
    meta = _read_meta(path)
    if meta is None:
        raise UserError(f"{path} is not a journal of crashes.reprocess; choose another --journal")
    differs = []
    if meta.get("host") != host:
        differs.append(f"host {meta.get('host')} (this run: {host})")
    if not same_ruleset(meta.get("ruleset", ""), ruleset):
        differs.append(
            f"ruleset {meta.get('ruleset') or 'default'} (this run: {ruleset or 'default'})"
        )
    if differs and not restart:
        same = []
        if meta.get("host") != host:
            same.append(f"--host {meta.get('host')}")
        if not same_ruleset(meta.get("ruleset", ""), ruleset):
            same.append(f"--ruleset {meta.get('ruleset') or 'default'}")
        raise UserError(
            f"the journal {path} was written for {' and '.join(differs)}; ids accepted for "
            f"another host or ruleset are never taken as done: rerun with {' '.join(same)} to "
            f"finish it, pass --restart to discard it, or give this run another --journal PATH"
        )
    return meta


def _find_cache_journal(
    cache_dir: Path, spooled: Journal, digest: str, host: str, ruleset: str, source: str
) -> tuple[Path, dict[str, str] | None]:
    """For stdin and --crash-id: the cache journal of the same host, ruleset and kind of input
    that has this very input, else the one sharing the most accepted ids with it, else the path
    of a new one."""
    best: tuple[int, Path, dict[str, str]] | None = None
    for path in sorted(cache_dir.glob("reprocess-*.sqlite")):
        meta = _read_meta(path)
        if (
            meta is None
            or meta.get("host") != host
            or not same_ruleset(meta.get("ruleset", ""), ruleset)
            or meta.get("source") != source
        ):
            continue
        if meta.get("input") == digest:
            return path, meta
        shared = _count_ledger(spooled, path, meta["version"], in_input=True)
        if shared and (best is None or shared > best[0]):
            best = (shared, path, meta)
    if best:
        return best[1], best[2]
    return cache_dir / f"{_journal_prefix(host, ruleset, source)}{digest[:16]}.sqlite", None


def _ledger_sql(version: str) -> tuple[str, str]:
    """SELECTs of the accepted ids, and of the refused (id, message), of the journal `old`."""
    if version == "1":  # accepted chunks were a prefix of the input, minus the refused ids
        accepted = (
            "SELECT i.crash_id FROM old.ids i WHERE i.seq <= "
            "(SELECT COALESCE(MAX(last_seq), 0) FROM old.chunks) "
            "AND i.seq NOT IN (SELECT seq FROM old.refused)"
        )
    else:
        accepted = "SELECT crash_id FROM old.accepted"
    return accepted, "SELECT crash_id, message FROM old.refused"


@contextlib.contextmanager
def _attached(journal: Journal, path: Path) -> Iterator[sqlite3.Connection]:
    db = journal.db
    try:
        db.execute("ATTACH DATABASE ? AS old", (str(path),))
    except sqlite3.Error as error:
        raise UserError(f"cannot read the journal {path}: {error}") from None
    try:
        yield db
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.execute("DETACH DATABASE old")


def _count_ledger(spooled: Journal, path: Path, version: str, *, in_input: bool = False) -> int:
    """How many ids the journal at `path` has accepted (only those in the spooled input)."""
    accepted, _ = _ledger_sql(version)
    with _attached(spooled, path) as db:
        if in_input:
            query = f"SELECT COUNT(*) FROM ids WHERE crash_id IN ({accepted})"
        else:
            query = f"SELECT COUNT(*) FROM ({accepted})"
        return int(db.execute(query).fetchone()[0])


def _carry_over(spooled: Journal, path: Path, version: str) -> Changes:
    """Copy the ledger of the journal at `path` into the spooled (new) input; say what differs."""
    accepted, refused = _ledger_sql(version)
    chunks = "SELECT size, accepted_at FROM old.chunks"
    with _attached(spooled, path) as db:
        db.execute("BEGIN")
        db.execute(f"INSERT OR IGNORE INTO accepted (crash_id) {accepted} ORDER BY 1")
        db.execute(f"INSERT OR IGNORE INTO refused (crash_id, message) {refused}")
        db.execute(f"INSERT INTO chunks (size, accepted_at) {chunks} ORDER BY rowid")
        db.execute("COMMIT")
        previous = int(db.execute("SELECT COUNT(*) FROM old.ids").fetchone()[0])
        shared, new = db.execute(
            "SELECT COALESCE(SUM(o), 0), COALESCE(SUM(NOT o AND p), 0) FROM ("
            "SELECT crash_id IN (SELECT crash_id FROM old.ids) AS o, "
            f"({_PENDING}) AS p FROM ids)"
        ).fetchone()
    skipped, refused_count = spooled.done_in_input()
    pending = spooled.total - skipped - refused_count
    return Changes(
        skipped=skipped,
        refused=refused_count,
        new=int(new),
        still=pending - int(new),
        removed=previous - int(shared),
    )


def _checkpoint(path: Path) -> None:
    """Write a journal's WAL into the file itself, so the WAL can go without losing anything."""
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        db.close()
    if busy:
        raise UserError(f"the journal {path} is busy (another program reads it); rerun")


def _lock(path: Path) -> IO[bytes]:
    """An exclusive lock on the journal, held while the handle is open (the Plan keeps it), so
    two runs cannot send from (or rewrite) the same journal at once. (SQLite's own locks are
    separate.)"""
    import fcntl

    handle = open(path, "rb")  # noqa: SIM115 - kept open by the Plan until the run ends
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UserError(
            f"another crashes.reprocess is already sending this input (journal "
            f"{path}); wait for it, or stop it and rerun"
        ) from None
    return handle


def _remove_dir(path: Path) -> None:
    for child in path.iterdir():
        with contextlib.suppress(OSError):
            child.unlink()
    with contextlib.suppress(OSError):
        path.rmdir()


def _check_input(stats: SpoolStats, source: str, skip_invalid: bool, allow_many: bool) -> None:
    if stats.invalid:
        for line in stats.invalid_shown:
            info(f"{source}:{line.number}: not a crash id: {line.text[:120]!r}")
        if stats.invalid > len(stats.invalid_shown):
            info(f"... and {stats.invalid - len(stats.invalid_shown):,} more invalid lines")
        if not skip_invalid:
            raise UserError(
                f"{stats.invalid:,} invalid line(s) in {source}; nothing was sent "
                f"(fix them, or pass --skip-invalid to leave them out)",
                code=2,
            )
    if stats.distinct == 0:
        hint = " (give --crash-id ID, --input FILE, or pipe ids on stdin)" * (source == "stdin")
        raise UserError(f"no crash ids in {source}; nothing was sent{hint}", code=2)
    if stats.distinct > MANY_IDS and not allow_many:
        raise UserError(
            f"{stats.distinct:,} crash ids is more than {MANY_IDS:,}; tell the Crash Stats team "
            f"(#crashreporting on Matrix) first, then rerun with --allow-many "
            f"(and consider --sleep 10)",
            code=2,
        )


@dataclass
class Outcome:
    """Counts for the summary."""

    total: int = 0
    already: int = 0
    sent: int = 0
    chunks: int = 0
    failed: int = 0
    refused: int = 0
    retries: int = 0
    error: str = ""


def submit(
    plan: Plan,
    client: object,
    *,
    chunk_size: int,
    sleep: float,
    ruleset: str,
    progress: Progress,
    outcome: Outcome,
    skip_refused: bool = False,
    sleeper: Callable[[float], None] = time.sleep,
) -> None:
    """Send every pending chunk, recording each accepted one; raises UserError on a hard stop.

    With `skip_refused`, a 400 naming some of the chunk's ids records those as refused in the
    journal and resends the rest of the chunk (each round drops at least one id, so it ends)."""
    from lib.crashstats import ApiError, RetriesExhausted

    journal = plan.journal
    first = True
    # Ids accepted or refused earlier (by this journal's ledger) are not in any pending chunk.
    for chunk in journal.pending_chunks(chunk_size):
        if not first and sleep > 0:
            sleeper(sleep)
        first = False
        try:
            accepted = _send_chunk(client, journal, chunk, ruleset, skip_refused, outcome)
        except ApiError as error:
            ids = chunk
            outcome.failed = len(ids)
            if error.status == 403 and "invalid" in error.message.lower():
                outcome.error = (
                    f"the Crash Stats token is not valid (HTTP 403: {error.message}); check "
                    f"SOCORRO_REPROCESS_API_TOKEN (tokens expire; create one at "
                    f"<host>/api/tokens/)"
                )
            elif error.status == 403:
                outcome.error = (
                    f"this token lacks the Reprocess Crashes permission (HTTP 403: {error.message})"
                )
            elif error.status == 400:
                offending = [crash_id for crash_id in ids if crash_id in error.message]
                shown = ", ".join(offending) if offending else f"{ids[0]} .. {ids[-1]}"
                hint = (
                    " (the server named no id of the chunk, so --skip-refused cannot help)"
                    if skip_refused or not offending
                    else "; rerun the same command with --skip-refused to leave the refused ids "
                    "out and send the rest"
                )
                outcome.error = (
                    f"the server refused a chunk (HTTP 400: {error.message}); offending ids: "
                    f"{shown}; nothing after it was sent{hint}"
                )
            else:
                outcome.error = f"the server answered HTTP {error.status}: {error.message}"
            raise UserError(outcome.error) from None
        except RetriesExhausted as error:
            outcome.failed = len(chunk)
            outcome.error = f"{error}; rerun the same command to resume"
            raise UserError(outcome.error) from None
        journal.mark_accepted(accepted)
        outcome.chunks += 1
        progress.advance(len(chunk))


def _send_chunk(
    client: object,
    journal: Journal,
    chunk: list[str],
    ruleset: str,
    skip_refused: bool,
    outcome: Outcome,
) -> list[str]:
    """POST one chunk and return the ids the server accepted; under `skip_refused`, drop the
    ids a 400 names (recorded as refused) and resend the rest."""
    from lib.crashstats import ApiError

    pending = list(chunk)
    while pending:
        values = [f"{crash_id}:{ruleset}" if ruleset else crash_id for crash_id in pending]
        try:
            client.post(REPROCESSING_PATH, [("crash_ids", value) for value in values])
        except ApiError as error:
            offending = [crash_id for crash_id in pending if crash_id in error.message]
            if not (skip_refused and error.status == 400 and offending):
                raise
            journal.mark_refused(offending, error.message)
            outcome.refused += len(offending)
            info(
                f"refused by the server (HTTP 400: {error.message}): "
                f"{', '.join(offending)}; sending the rest of the chunk"
            )
            pending = [crash_id for crash_id in pending if crash_id not in offending]
            continue
        outcome.sent += len(pending)
        return pending
    return pending  # every id of the chunk was refused


@dataclass
class Options:
    """Everything `crashes.reprocess` needs, already read from flags and config."""

    host: str
    ruleset: str
    chunk_size: int
    sleep: float
    allow_many: bool
    skip_invalid: bool
    restart: bool
    dry_run: bool
    cache_dir: Path
    journal: Path | None
    env_file: str | None
    progress_terminal: bool
    progress_interval: float
    policy: object = None
    skip_refused: bool = False


def summary(outcome: Outcome, stats: SpoolStats | None) -> str:
    invalid = stats.invalid if stats else 0
    duplicates = stats.duplicates if stats else 0
    earlier = f" ({outcome.already:,} accepted by an earlier run)" if outcome.already else ""
    return (
        f"summary: {outcome.sent:,} ids sent and accepted in {outcome.chunks:,} chunks{earlier}; "
        f"{outcome.already + outcome.sent + outcome.refused:,}/{outcome.total:,} done; "
        f"skipped invalid: {invalid:,}; "
        f"duplicates dropped: {duplicates:,}; refused by the server: {outcome.refused:,}; "
        f"retries: {outcome.retries:,}; failed: {outcome.failed:,}"
    )


def run(lines: Iterable[str], source: str, options: Options) -> Outcome:
    """Check, spool, then send (or under dry run, list) every chunk; print a summary."""
    from lib.crashstats import CrashStatsClient, require_token

    if options.chunk_size < 1 or options.chunk_size > 1000:
        raise UserError(f"--chunk-size must be between 1 and 1000 (got {options.chunk_size})")
    if options.sleep < 0:
        raise UserError(f"--sleep must not be negative (got {options.sleep:g})")
    token = None
    if options.dry_run:
        from lib.crashstats import find_token

        if not find_token(options.env_file):
            info("dry run: note that no Crash Stats token is set (a real run would stop here)")
    else:
        token = require_token(options.env_file)
    plan = prepare(
        lines,
        source=source,
        journal_path=options.journal,
        cache_dir=options.cache_dir,
        host=options.host,
        ruleset=options.ruleset,
        skip_invalid=options.skip_invalid,
        allow_many=options.allow_many,
        restart=options.restart,
        dry_run=options.dry_run,
    )
    journal = plan.journal
    already, refused_before = journal.done_in_input()
    position = already + refused_before  # ids of the input handled by earlier runs
    outcome = Outcome(total=journal.total, already=already, refused=refused_before)
    age = _age_note(journal.last_accepted_at)
    if plan.changes:
        info(plan.changes.describe(plan.path or journal.path, age))
    elif position:
        refused_note = f" ({refused_before:,} refused by the server)" if refused_before else ""
        info(
            f"resuming from {plan.path or journal.path}{age}: {outcome.already:,} of "
            f"{outcome.total:,} ids were accepted by an earlier run{refused_note}"
        )
    if plan.discarded is not None:
        info(
            f"--restart: discarded the journal {plan.path}; every id is sent, including the "
            f"{plan.discarded:,} it had as accepted"
        )
    if plan.stats.duplicates:
        info(f"dropped {plan.stats.duplicates:,} duplicate ids")
    if options.dry_run:
        return _list_chunks(plan, options, outcome)
    info(
        f"reprocessing {outcome.total - position:,} crash ids at {options.host} in chunks "
        f"of {options.chunk_size}, sleeping {options.sleep:g}s between chunks "
        f"(journal: {journal.path})"
    )
    progress = Progress(
        outcome.total,
        position,
        terminal=options.progress_terminal,
        interval=options.progress_interval,
    )
    client = CrashStatsClient(options.host, token, on_retry=progress.note)
    if options.policy is not None:
        client.policy = options.policy
    try:
        submit(
            plan,
            client,
            chunk_size=options.chunk_size,
            sleep=options.sleep,
            ruleset=options.ruleset,
            progress=progress,
            outcome=outcome,
            skip_refused=options.skip_refused,
        )
    except KeyboardInterrupt:
        progress.stop()
        outcome.retries = client.retries
        info(summary(outcome, plan.stats))
        plan.close()
        raise UserError(
            f"interrupted; rerun the same command to resume (journal: {journal.path})", code=130
        ) from None
    except UserError:
        progress.stop()
        outcome.retries = client.retries
        info(summary(outcome, plan.stats))
        info(f"progress is kept in {journal.path}; rerun the same command to resume")
        plan.close()
        raise
    finally:
        client.close()
    progress.stop()
    outcome.retries = client.retries
    if outcome.refused:
        shown = journal.refused_ids(INVALID_SHOWN)
        more = f" and {outcome.refused - len(shown):,} more" if outcome.refused > len(shown) else ""
        info(f"refused by the server and left out: {', '.join(shown)}{more}")
    plan.discard()
    info(summary(outcome, plan.stats))
    return outcome


def _age_note(when: float | None, now: float | None = None) -> str:
    """` (last chunk accepted 3 days ago)`, so that resuming an old, abandoned journal (whose
    accepted ids are then skipped) does not go unnoticed; empty when nothing was accepted."""
    if when is None:
        return ""
    seconds = max(0.0, (time.time() if now is None else now) - when)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f" (last chunk accepted {count} {unit}{'s' if count != 1 else ''} ago)"
    return " (last chunk accepted less than a minute ago)"


def _list_chunks(plan: Plan, options: Options, outcome: Outcome) -> Outcome:
    """Dry run: print the chunks that would be sent (stdout), send nothing, keep nothing."""
    import sys

    first_chunk = plan.journal.accepted_chunks
    pending = outcome.total - outcome.already - outcome.refused
    count = -(-pending // options.chunk_size)
    suffix = f":{options.ruleset}" if options.ruleset else ""
    try:
        for number, ids in enumerate(plan.journal.pending_chunks(options.chunk_size), 1):
            sys.stdout.write(
                f"chunk {first_chunk + number}: {len(ids)} ids, "
                f"{ids[0]}{suffix} .. {ids[-1]}{suffix}\n"
            )
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop listing quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    info(
        f"dry run: would send {pending:,} ids in {count:,} chunks to "
        f"{options.host}{REPROCESSING_PATH}; nothing was sent"
    )
    if plan.temporary:
        plan.discard()
    else:
        plan.close()
    return outcome
