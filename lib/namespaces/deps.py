"""Dependency security checks: known vulnerabilities in the service's Python and JS pins."""

import json
import os
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from lib.console import info
from lib.errors import UserError
from lib.settings import is_dry, number, resolve_path, setting, str_list, text_setting


@task(
    auto_shortflags=False,
    iterable=["requirements"],
    help={
        "requirements": "requirements file to audit (repeatable; default: config "
        "deps.requirements, requirements.txt); paths relative to the current directory",
        "npm_dir": "directory holding package-lock.json for `npm audit` "
        "(default: config deps.npm_dir; empty: no JavaScript check)",
        "advisory_db": "check the Python pins offline against this OSV advisory database "
        "directory instead of the online service (default: config deps.advisory_db)",
        "json": "print the report as JSON (for scripts) instead of tables",
    },
)
def check(c, requirements=None, npm_dir=None, advisory_db=None, json_=False):
    """Check pinned Python (and npm) dependencies for known vulnerabilities.

    Exit 0: everything checked, clean. Exit 1: vulnerabilities found. Exit 2: something
    could not be checked (unpinned requirement, package unknown to the service, service
    unreachable, tool missing); it is listed, never reported as clean.
    """
    from lib import advisories, audit, requirements_files
    from lib.console import refuse_core_short_flags

    refuse_core_short_flags("deps.check", {"-r": "--requirements FILE"})
    if requirements and any(not str(value).strip() for value in requirements):
        raise UserError("--requirements is empty; give a requirements file", code=2)
    files = str_list(requirements) or str_list(setting(c, "deps.requirements", many=True))
    npm_value = npm_dir if npm_dir is not None else setting(c, "deps.npm_dir")
    db_value = advisory_db if advisory_db is not None else setting(c, "deps.advisory_db")
    if not files and not npm_value:
        raise UserError("nothing to check: no requirements files and no npm directory", code=2)
    for value in [*files, npm_value, db_value]:
        if value and str(value).startswith("-"):
            raise UserError(f"path must not start with '-' (got {value!r})", code=2)

    # Validate every input before running any check.
    # Paths as the user wrote them (relative to the cwd), so the report shows them that way.
    scan = requirements_files.scan([Path(os.path.expanduser(f)) for f in files])
    npm_path = resolve_path(npm_value) if npm_value else None
    if npm_path is not None and not npm_path.is_dir():
        raise UserError(f"npm directory {npm_path} does not exist", code=2)
    database = None
    if db_value:
        cache = setting(c, "deps.cache_dir")
        database = advisories.load(resolve_path(db_value), resolve_path(cache) if cache else None)

    if is_dry(c):
        python_check = (
            f"the advisory database {database.path}" if database else "pip-audit (online)"
        )
        print(
            f"would check {len(scan.pins)} pinned Python requirements from "
            f"{', '.join(scan.files) or 'no file'} with {python_check}; "
            f"{len(scan.not_pinned)} not pinned"
        )
        print(f"would run npm audit in {npm_path}" if npm_path else "no JavaScript check")
        return

    report = audit.Report()
    for item in scan.not_pinned:
        report.unchecked.append(
            audit.Unchecked("PyPI", item.name or item.requirement, "", item.reason, item.source)
        )
    if not npm_path:
        report.notes.append("JavaScript not checked: no npm directory configured (deps.npm_dir)")
    python_check = bool(scan.pins)
    if files and not scan.pins and not scan.not_pinned:
        # An empty file (or only comments and options): nothing was checked, so not clean.
        report.unchecked.append(
            audit.Unchecked(
                "PyPI",
                "*",
                "",
                f"no requirements in {', '.join(scan.files)}: nothing was checked",
                ", ".join(scan.files),
            )
        )

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        npm_timeout = number(c, "deps.npm_timeout", kind=int, minimum=1)
        npm_future = pool.submit(audit.run_npm_audit, npm_path, npm_timeout) if npm_path else None
        if python_check:
            if database is not None:
                report.merge(audit.check_advisory_database(scan.pins, database))
            else:
                report.merge(
                    audit.run_pip_audit(
                        scan.pins,
                        service=text_setting(c, "deps.service"),
                        timeout=number(c, "deps.timeout", kind=int, minimum=1),
                    )
                )
            audit.annotate_markers(report, scan.pins)
        elif files:
            report.checks.append(
                audit.CheckRun("Python", "PyPI", "skipped", "no pinned Python requirements")
            )
        if npm_future is not None:
            report.merge(npm_future.result())

    if json_:
        print(json.dumps(report.to_json(), indent=2))
    else:
        audit.render(report)
    if report.exit_code:
        if json_:
            info(f"deps.check: {report.status}")
        raise Exit(code=report.exit_code)
