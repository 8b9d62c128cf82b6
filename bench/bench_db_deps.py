"""Benchmarks for db.connect and deps.check, side by side with their references.

    .venv/bin/python bench/bench_db_deps.py [--pins 200] [--runs 5]

1. `invoke db.connect --command "select 1"` against a real PostgreSQL 15 (started here, as in
   the tests) versus plain `psql -c "select 1"` with PGPASSWORD (the how-to's command) plus
   Invoke's own start (a one-task tasks.py). What is left is our work: port probe, passfile.
2. `invoke deps.check --advisory-db DB --json` over N real pins (names taken from the PyPA
   database snapshot: $RELENG_ADVISORY_DB, else ../shared/data/... beside the clone), with the
   index cached, versus `pip-audit --no-deps --disable-pip -r FILE` over the same pins (the
   online reference; on this network PyPI answers 404 quickly, so the reference is, if
   anything, faster than it would be for real). The cold index build (first run after the
   database changes) is printed too.
Prints medians and ratios; nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from tests.pg_server import start_server, stop_server_at  # noqa: E402

#: $RELENG_ADVISORY_DB, else the snapshot in shared/ beside the clone (as in the tests).
PYPA_DB = Path(
    os.environ.get("RELENG_ADVISORY_DB")
    or PROJECT_ROOT.parent / "shared" / "data" / "pypa-advisory-database"
).expanduser()


def timed(cmd: list[str], cwd: Path, env: dict[str, str], runs: int, ok=(0,)) -> float:
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)  # warm caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
        samples.append(time.perf_counter() - start)
        if result.returncode not in ok:
            raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr.decode()[-500:]}")
    return statistics.median(samples)


def bench_db(runs: int) -> None:
    server = start_server()
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "PG"))}
        ours = timed(
            [
                sys.executable,
                "-m",
                "invoke",
                "db.connect",
                "--command",
                "select 1",
            ],
            PROJECT_ROOT,
            dict(
                base,
                INVOKE_DB_HOST=server.host,
                INVOKE_DB_PORT=str(server.port),
                INVOKE_DB_PASSWORD=server.password,
            ),
            runs,
        )
        reference = timed(
            [
                "psql",
                "-h",
                server.host,
                "-p",
                str(server.port),
                "-U",
                server.user,
                "--no-password",
                "-c",
                "select 1",
                server.database,
            ],
            PROJECT_ROOT,
            dict(base, PGPASSWORD=server.password),
            runs,
        )
        with tempfile.TemporaryDirectory() as tmp:
            empty = Path(tmp)
            (empty / "tasks.py").write_text(
                "from invoke import task\n\n\n@task\ndef noop(c):\n    pass\n"
            )
            invoke_start = timed([sys.executable, "-m", "invoke", "noop"], empty, base, runs)
    finally:
        stop_server_at(server.base)
    baseline = reference + invoke_start
    print(f"db.connect --command 'select 1': {ours * 1000:.0f} ms")
    print(f"  reference psql -c 'select 1':  {reference * 1000:.0f} ms")
    print(f"  reference + Invoke start (one-task tasks.py): {baseline * 1000:.0f} ms")
    print(f"  ratio: {ours / baseline:.2f}x (our own work: {1000 * (ours - baseline):.0f} ms)")


def bench_deps(pins: int, runs: int) -> None:
    if not PYPA_DB.is_dir():
        print(f"deps.check: skipped, no advisory database at {PYPA_DB} (set RELENG_ADVISORY_DB)")
        return
    names = sorted(p.name for p in (PYPA_DB / "vulns").iterdir() if p.is_dir())[:pins]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "requirements.txt").write_text("".join(f"{name}==1.0.0\n" for name in names))
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
        env.update(HOME=str(work), XDG_CACHE_HOME=str(work / "cache"))
        check = [
            sys.executable,
            "-m",
            "invoke",
            "--search-root",
            str(PROJECT_ROOT),
            "deps.check",
            "--json",
            "--advisory-db",
            str(PYPA_DB),
        ]
        start = time.perf_counter()
        subprocess.run(check, cwd=work, env=env, capture_output=True, check=False)
        cold = time.perf_counter() - start
        warm = timed(check, work, env, runs, ok=(0, 1))
        reference = timed(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "-r",
                "requirements.txt",
                "--no-deps",
                "--disable-pip",
                "--format",
                "json",
                "--progress-spinner",
                "off",
            ],
            work,
            env,
            runs,
            ok=(0, 1),
        )
    print(f"deps.check --advisory-db over {len(names)} pins: {warm * 1000:.0f} ms (cached index)")
    print(f"  first run (index build): {cold * 1000:.0f} ms")
    print(f"  reference pip-audit over the same pins: {reference * 1000:.0f} ms")
    print(f"  ratio: {warm / reference:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pins", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bench_db(args.runs)
    bench_deps(args.pins, args.runs)


if __name__ == "__main__":
    main()
