"""Benchmarks for deploy.prepare and `invoke --list`, side by side with their references.

    .venv/bin/python bench/bench_deploy.py [--commits 10000] [--runs 7]

1. `invoke deploy.prepare --offline --json` on a generated repository with N commits since the
   last tag, against `git log --no-merges` over the same range plus interpreter start. Target:
   within 1.5x. Two starts are printed: Invoke listing a one-task tasks.py (what any Invoke task
   pays before its own code runs; the target is read against this one) and bare Python
   (`python -c pass`), for comparison.
2. `invoke --list` of this project against `invoke --list` of a one-task tasks.py. Target: 1.3x.
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

from tests.gitrepos import ServiceRepo  # noqa: E402


def timed_together(commands: dict[str, tuple[list[str], Path]], runs: int) -> dict[str, float]:
    """Median wall time of each command, measured round-robin (one run of each in turn), so a
    change in the machine's speed during the benchmark affects every command alike."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for round_number in range(runs + 1):
        for name, (cmd, cwd) in commands.items():
            start = time.perf_counter()
            result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
            elapsed = time.perf_counter() - start
            if result.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr.decode()[-500:]}")
            if round_number:  # the first round only warms caches
                samples[name].append(elapsed)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    invoke = [sys.executable, "-m", "invoke"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        repo = ServiceRepo(tmp_path)
        repo.commit("Initial commit")
        repo.tag("100")
        repo.many_commits(args.commits, message="bug {n}: change number {n}")
        empty = tmp_path / "empty-project"
        empty.mkdir()
        (empty / "tasks.py").write_text(
            "from invoke import task\n\n\n@task\ndef noop(c):\n    pass\n"
        )

        medians = timed_together(
            {
                "start": ([*invoke, "--list"], empty),
                "python": ([sys.executable, "-c", "pass"], empty),
                "git_log": (["git", "log", "--no-merges", "100..main"], repo.path),
                "prepare": (
                    [
                        *invoke,
                        "-r",
                        str(PROJECT_ROOT),
                        "deploy.prepare",
                        "--repo",
                        str(repo.path),
                        "--offline",
                        "--json",
                    ],
                    repo.path,
                ),
                "listing": ([*invoke, "--list"], PROJECT_ROOT),
            },
            args.runs,
        )
    start_only, git_log = medians["start"], medians["git_log"]
    prepare, listing = medians["prepare"], medians["listing"]

    reference = git_log + start_only
    python_only = medians["python"]
    print(f"commits since the last tag: {args.commits}, runs: {args.runs} (medians, round-robin)")
    print(f"git log --no-merges:               {git_log * 1000:8.1f} ms")
    print(f"invoke start (one-task --list):    {start_only * 1000:8.1f} ms")
    print(f"python start (-c pass):            {python_only * 1000:8.1f} ms")
    print(f"deploy.prepare --offline --json:   {prepare * 1000:8.1f} ms")
    print(f"  ratio to git log + invoke start: {prepare / reference:8.2f}x  (target <= 1.5x)")
    print(f"  ratio to git log + python start: {prepare / (git_log + python_only):8.2f}x")
    print(f"invoke --list (this project):      {listing * 1000:8.1f} ms")
    print(f"  ratio to one-task --list:        {listing / start_only:8.2f}x  (target <= 1.3x)")


if __name__ == "__main__":
    main()
