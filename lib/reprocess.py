"""Submitting crash ids to the Reprocessing API in chunks, with a journal that makes reruns resume.

Flow: the input (a file, stdin or ids given on the command line) is read once, line by line, and
spooled into an SQLite journal: one row per distinct valid id, in input order (duplicates are
dropped by an on-disk sort, so memory stays flat for millions of ids). Only when the whole input is
valid (or `--skip-invalid`) and under the `--allow-many` limit is anything sent. Each accepted
chunk is committed to the journal before the next one is sent, so a rerun of the same command
after any failure, Ctrl-C or kill -9 re-sends at most the chunk that was in flight. The journal is
removed once every chunk has been accepted.
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

from lib.console import info
from lib.crashids import VALID_RULESETS, InputLine, read_lines
from lib.errors import UserError
from lib.progress import Progress

#: Without --allow-many, more distinct ids than this are refused (Crash Stats' own rule).
MANY_IDS = 10_000
#: Invalid lines shown before the rest are only counted.
INVALID_SHOWN = 20
_BATCH = 5_000
_JOURNAL_VERSION = "1"
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


class Journal:
    """An SQLite file: the distinct ids in input order, and how far the accepted chunks reach."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS ids (seq INTEGER PRIMARY KEY, crash_id TEXT NOT NULL)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS chunks (last_seq INTEGER PRIMARY KEY, size INTEGER, "
            "accepted_at REAL)"
        )
        # Ids the server refused with 400 and --skip-refused left out (seq: their input order).
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS refused (seq INTEGER PRIMARY KEY, crash_id TEXT NOT NULL, "
            "message TEXT)"
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
    def accepted_seq(self) -> int:
        """The seq of the last id of the last accepted chunk (0: nothing accepted yet)."""
        row = self.db.execute("SELECT MAX(last_seq) FROM chunks").fetchone()
        return int(row[0] or 0)

    @property
    def accepted_chunks(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    @property
    def total(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM ids").fetchone()[0])

    def pending_chunks(self, size: int) -> Iterator[tuple[int, list[str]]]:
        """(last seq, ids) of each chunk not yet accepted, read from disk one chunk at a time."""
        after = self.accepted_seq
        while True:
            rows = self.db.execute(
                "SELECT seq, crash_id FROM ids WHERE seq > ? ORDER BY seq LIMIT ?", (after, size)
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield after, [row[1] for row in rows]

    def refused_seqs(self, first: int, last: int) -> set[int]:
        """The seqs between `first` and `last` (included) recorded as refused."""
        rows = self.db.execute(
            "SELECT seq FROM refused WHERE seq BETWEEN ? AND ?", (first, last)
        ).fetchall()
        return {int(row[0]) for row in rows}

    def refused_count(self, up_to: int | None = None) -> int:
        """How many ids were recorded as refused (only those with seq <= `up_to` if given)."""
        if up_to is None:
            row = self.db.execute("SELECT COUNT(*) FROM refused").fetchone()
        else:
            row = self.db.execute(
                "SELECT COUNT(*) FROM refused WHERE seq <= ?", (up_to,)
            ).fetchone()
        return int(row[0])

    def refused_ids(self, limit: int) -> list[str]:
        rows = self.db.execute(
            "SELECT crash_id FROM refused ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [row[0] for row in rows]

    def mark_refused(self, refused: list[tuple[int, str]], message: str) -> None:
        """Record ids the server refused (committed at once, before the rest is resent)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO refused (seq, crash_id, message) VALUES (?, ?, ?)",
            [(seq, crash_id, message) for seq, crash_id in refused],
        )

    def mark_accepted(self, last_seq: int, size: int) -> None:
        """Record one accepted chunk (committed at once: autocommit)."""
        self.db.execute(
            "INSERT OR REPLACE INTO chunks (last_seq, size, accepted_at) VALUES (?, ?, ?)",
            (last_seq, size, time.time()),
        )


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


def journal_key(digest: str, host: str, ruleset: str) -> str:
    return hashlib.sha256(f"{digest}\n{host}\n{ruleset}".encode()).hexdigest()[:32]


@dataclass
class Plan:
    """A prepared run: the journal (spooled or resumed) and what reading the input found."""

    journal: Journal
    stats: SpoolStats
    resumed: bool
    temporary: bool = False

    def discard(self) -> None:
        """Close and delete the journal (after success, or a dry run's temporary spool)."""
        self.journal.close()
        _unlink_sqlite(self.journal.path)
        if self.temporary:
            _remove_dir(self.journal.path.parent)


def _unlink_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
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
    """Spool and check the input, then open (or resume) its journal. Sends nothing.

    `journal_path` None means: keyed by the input's content in `cache_dir`. Under `dry_run`
    nothing is created or changed outside a temporary directory.
    """
    if ruleset and ruleset not in VALID_RULESETS:
        raise UserError(f"--ruleset must be one of {', '.join(VALID_RULESETS)} (got {ruleset!r})")
    spool_dir = Path(tempfile.mkdtemp(prefix="crashes-dry-")) if dry_run else None
    target_dir = spool_dir or (journal_path.parent if journal_path else cache_dir)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=target_dir, prefix=".spool-", suffix=".sqlite")
        os.close(handle)
    except OSError as error:
        raise UserError(f"cannot write the journal in {target_dir}: {error.strerror}") from None
    temp_path = Path(temp_name)
    spooled = Journal(temp_path)
    try:
        stats = spool(lines, spooled)
        _check_input(stats, source, skip_invalid, allow_many)
    except BaseException:
        spooled.close()
        _unlink_sqlite(temp_path)
        if spool_dir:
            _remove_dir(spool_dir)
        raise

    key = journal_key(stats.digest, host, ruleset)
    final = journal_path or cache_dir / f"reprocess-{key}.sqlite"
    if final.exists():
        if _journal_version(final) != _JOURNAL_VERSION:
            spooled.close()
            _unlink_sqlite(temp_path)
            if spool_dir:
                _remove_dir(spool_dir)
            raise UserError(
                f"{final} is not a journal of crashes.reprocess; choose another --journal"
            )
    if final.exists() and not restart:
        existing = Journal(final)
        mismatch = [
            name
            for name, value in (("input", stats.digest), ("host", host), ("ruleset", ruleset))
            if existing.get(name) != value
        ]
        if mismatch:
            existing.close()
            spooled.close()
            _unlink_sqlite(temp_path)
            if spool_dir:
                _remove_dir(spool_dir)
            raise UserError(
                f"the journal {final} belongs to another run (its {', '.join(mismatch)} differs); "
                f"rerun with --restart to discard it, or choose another --journal"
            )
        spooled.close()
        _unlink_sqlite(temp_path)
        if spool_dir:
            _remove_dir(spool_dir)
        return Plan(existing, stats, resumed=True)
    if dry_run:
        return Plan(spooled, stats, resumed=False, temporary=True)
    spooled.set(
        version=_JOURNAL_VERSION,
        input=stats.digest,
        host=host,
        ruleset=ruleset,
        source=source,
        duplicates=stats.duplicates,
        invalid=stats.invalid,
        created_at=time.time(),
    )
    spooled.close()
    if restart:
        _unlink_sqlite(final)
    os.replace(temp_path, final)
    _unlink_sqlite(temp_path)
    return Plan(Journal(final), stats, resumed=False)


def _journal_version(path: Path) -> str | None:
    """The version recorded in a journal, read without changing the file; None if not one."""
    from urllib.parse import quote

    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


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
    for last_seq, chunk in journal.pending_chunks(chunk_size):
        if not first and sleep > 0:
            sleeper(sleep)
        first = False
        first_seq = last_seq - len(chunk) + 1  # seqs are dense: a chunk is a run of them
        # Ids refused in an earlier run (killed before the chunk was accepted) stay out.
        skipped = journal.refused_seqs(first_seq, last_seq)
        pending = [
            (first_seq + index, crash_id)
            for index, crash_id in enumerate(chunk)
            if first_seq + index not in skipped
        ]
        outcome.refused += len(skipped)
        try:
            _send_chunk(client, journal, pending, ruleset, skip_refused, outcome)
        except ApiError as error:
            ids = [crash_id for _, crash_id in pending]
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
            outcome.failed = len(pending)
            outcome.error = f"{error}; rerun the same command to resume"
            raise UserError(outcome.error) from None
        journal.mark_accepted(last_seq, len(chunk))
        outcome.chunks += 1
        progress.advance(len(chunk))


def _send_chunk(
    client: object,
    journal: Journal,
    pending: list[tuple[int, str]],
    ruleset: str,
    skip_refused: bool,
    outcome: Outcome,
) -> None:
    """POST one chunk; under `skip_refused`, drop the ids a 400 names and resend the rest."""
    from lib.crashstats import ApiError

    while pending:
        values = [f"{crash_id}:{ruleset}" if ruleset else crash_id for _, crash_id in pending]
        try:
            client.post(REPROCESSING_PATH, [("crash_ids", value) for value in values])
        except ApiError as error:
            offending = [(seq, c) for seq, c in pending if c in error.message]
            if not (skip_refused and error.status == 400 and offending):
                raise
            journal.mark_refused(offending, error.message)
            outcome.refused += len(offending)
            info(
                f"refused by the server (HTTP 400: {error.message}): "
                f"{', '.join(c for _, c in offending)}; sending the rest of the chunk"
            )
            pending = [item for item in pending if item not in offending]
            continue
        outcome.sent += len(pending)
        return


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
    if not plan.temporary:
        _lock(plan)
    # seq values are dense (1..N), so the last accepted seq is the count handled so far.
    position = journal.accepted_seq
    refused_before = journal.refused_count(up_to=position) if position else 0
    outcome = Outcome(
        total=journal.total, already=position - refused_before, refused=refused_before
    )
    if position:
        refused_note = f" ({refused_before:,} refused by the server)" if refused_before else ""
        info(
            f"resuming from {journal.path}: {outcome.already:,} of {outcome.total:,} ids were "
            f"accepted by an earlier run{refused_note}"
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
        journal.close()
        raise UserError(
            f"interrupted; rerun the same command to resume (journal: {journal.path})", code=130
        ) from None
    except UserError:
        progress.stop()
        outcome.retries = client.retries
        info(summary(outcome, plan.stats))
        info(f"progress is kept in {journal.path}; rerun the same command to resume")
        journal.close()
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


def _lock(plan: Plan) -> None:
    """Hold an exclusive lock on the journal for this process's lifetime, so two runs of the
    same input cannot send the same chunks at once. (SQLite's own locks are separate.)"""
    import fcntl

    handle = open(plan.journal.path, "rb")  # noqa: SIM115 - kept open until the process ends
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        plan.journal.close()
        raise UserError(
            f"another crashes.reprocess is already sending this input (journal "
            f"{plan.journal.path}); wait for it, or stop it and rerun"
        ) from None
    _LOCKS.append(handle)


_LOCKS: list[object] = []


def _list_chunks(plan: Plan, options: Options, outcome: Outcome) -> Outcome:
    """Dry run: print the chunks that would be sent (stdout), send nothing, keep nothing."""
    import sys

    first_chunk = plan.journal.accepted_chunks
    pending = outcome.total - plan.journal.accepted_seq
    count = -(-pending // options.chunk_size)
    suffix = f":{options.ruleset}" if options.ruleset else ""
    try:
        for number, (_, ids) in enumerate(plan.journal.pending_chunks(options.chunk_size), 1):
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
        plan.journal.close()
    return outcome
