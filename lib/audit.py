"""Dependency vulnerability checks and their merged report.

Three sources feed one report: pip-audit (the online service) or a local OSV advisory
database for the pinned Python requirements, and `npm audit` for a JavaScript lockfile.
The report keeps three outcomes apart, because scripts act on them differently:

* exit 0 (clean): everything was checked and nothing is known to be vulnerable;
* exit 1 (vulnerable): at least one known vulnerability was found (anything that could not
  be checked is listed too);
* exit 2 (incomplete): nothing vulnerable was found, but something could not be checked
  (unpinned requirement, package the service could not look up, unreachable service,
  missing tool), so the result is NOT clean.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib.redaction import child_environment
from lib.requirements_files import Pin

EXIT_CLEAN, EXIT_VULNERABLE, EXIT_INCOMPLETE = 0, 1, 2


@dataclass
class Finding:
    """One advisory affecting one installed version of one package."""

    ecosystem: str
    package: str
    version: str
    advisory: str
    fixed_versions: list[str]
    summary: str
    aliases: list[str] = field(default_factory=list)
    severity: str = ""
    sources: list[str] = field(default_factory=list)
    #: Environment markers on the requirement (checked whatever they say).
    markers: list[str] = field(default_factory=list)


@dataclass
class Unchecked:
    """Something that was not checked, and why; never counted as clean."""

    ecosystem: str
    package: str
    version: str
    reason: str
    source: str = ""


@dataclass
class CheckRun:
    """One check that ran (or could not): pip-audit, the advisory database, npm audit."""

    name: str
    ecosystem: str
    status: str  # "ok", "failed" or "skipped"
    detail: str = ""
    checked: int = 0


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[Unchecked] = field(default_factory=list)
    checks: list[CheckRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def merge(self, other: Report) -> None:
        self.findings += other.findings
        self.unchecked += other.unchecked
        self.checks += other.checks
        self.notes += other.notes

    @property
    def exit_code(self) -> int:
        if self.findings:
            return EXIT_VULNERABLE
        if self.unchecked or any(check.status == "failed" for check in self.checks):
            return EXIT_INCOMPLETE
        return EXIT_CLEAN

    @property
    def status(self) -> str:
        return {EXIT_CLEAN: "clean", EXIT_VULNERABLE: "vulnerable", EXIT_INCOMPLETE: "incomplete"}[
            self.exit_code
        ]

    def sorted(self) -> Report:
        findings = sorted(
            self.findings, key=lambda f: (f.ecosystem, f.package, f.version, f.advisory)
        )
        unchecked = sorted(self.unchecked, key=lambda u: (u.ecosystem, u.package, u.source))
        return Report(findings, unchecked, list(self.checks), list(self.notes))

    def to_json(self) -> dict[str, Any]:
        report = self.sorted()
        return {
            "status": report.status,
            "exit_code": report.exit_code,
            "vulnerabilities": [asdict(f) for f in report.findings],
            "could_not_check": [asdict(u) for u in report.unchecked],
            "checks": [asdict(c) for c in report.checks],
            "notes": report.notes,
        }


def annotate_markers(report: Report, pins: list[Pin]) -> None:
    """Show the environment markers of the pins: on their findings, and as notes.

    A pin with a marker (`; python_version < "3"`) is checked all the same (the service's
    runtime may differ from this machine's); the reader is told which pins carry one.
    """
    from packaging.utils import canonicalize_name

    by_key = {(pin.name, pin.version): pin for pin in pins if pin.markers}
    for finding in report.findings:
        pin = by_key.get((canonicalize_name(finding.package), finding.version))
        if finding.ecosystem == "PyPI" and pin is not None:
            finding.markers = list(pin.markers)
    for pin in by_key.values():
        markers = " or ".join(f"`{marker}`" for marker in pin.markers)
        report.notes.append(
            f"{pin.name}=={pin.version} ({', '.join(pin.sources)}) has the environment marker "
            f"{markers}; it was checked whatever the marker says"
        )


# --- pip-audit -------------------------------------------------------------------------------


def parse_pip_audit(data: Any, pins: list[Pin]) -> Report:
    """Findings and skips from pip-audit's `--format json` output for these pins.

    A pin that pip-audit does not mention at all is "could not check" too.
    """
    if not isinstance(data, dict) or not isinstance(data.get("dependencies"), list):
        raise ValueError("not pip-audit JSON output (no dependencies list)")
    from packaging.utils import canonicalize_name

    by_name: dict[str, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
    report = Report()
    reported: set[tuple[str, str]] = set()
    for dep in data["dependencies"]:
        name = canonicalize_name(str(dep.get("name", "")))
        candidates = by_name.get(name, [])
        version = str(dep.get("version") or (candidates[0].version if candidates else ""))
        # pip-audit prints normalised versions ("1.0b0" for "1.0-beta"): match as PEP 440.
        pin = next((p for p in candidates if _same_version(p.version, version)), None)
        if pin is not None:
            version = pin.version
        sources = pin.sources if pin is not None else []
        reported.add((name, version))
        if dep.get("skip_reason"):
            for pin in candidates or [Pin(name, version)]:
                reported.add((name, pin.version))
                report.unchecked.append(
                    Unchecked(
                        "PyPI",
                        name,
                        pin.version,
                        f"pip-audit skipped it: {_skip_reason(dep['skip_reason'])}",
                        ", ".join(pin.sources),
                    )
                )
            continue
        for vuln in dep.get("vulns") or []:
            report.findings.append(
                Finding(
                    ecosystem="PyPI",
                    package=name,
                    version=version,
                    advisory=str(vuln.get("id", "")),
                    fixed_versions=[str(v) for v in vuln.get("fix_versions") or []],
                    summary=_one_line(vuln.get("description") or ""),
                    aliases=[str(a) for a in vuln.get("aliases") or []],
                    sources=list(sources),
                )
            )
    for pin in pins:
        if (pin.name, pin.version) not in reported:
            report.unchecked.append(
                Unchecked(
                    "PyPI",
                    pin.name,
                    pin.version,
                    "pip-audit did not report on it",
                    ", ".join(pin.sources),
                )
            )
    return report


def _skip_reason(text: str) -> str:
    """pip-audit's skip reason without the trailing "name (version)" the table already shows."""
    return re.sub(r":\s*\S+ \([^)]*\)\s*$", "", _one_line(str(text)))


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _pin_layers(pins: list[Pin]) -> list[list[Pin]]:
    """Split pins so that no name repeats within one pip-audit run (it resolves by name)."""
    layers: list[list[Pin]] = []
    for pin in pins:
        for layer in layers:
            if all(other.name != pin.name for other in layer):
                layer.append(pin)
                break
        else:
            layers.append([pin])
    return layers


def _service_failure(stderr: str, returncode: int) -> str:
    """One line explaining why pip-audit produced no report."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    interesting = [
        line
        for line in lines
        if not line.startswith("WARNING:") and not line.startswith("File ") and line != "^"
    ]
    last = interesting[-1] if interesting else f"pip-audit exited with {returncode}"
    network = re.search(
        r"ConnectionError|ProxyError|Max retries|Name or service not known|"
        r"Temporary failure in name resolution|timed out|Could not connect|SSLError",
        stderr,
    )
    if not network:
        return f"pip-audit failed: {last[:240]}"
    error = re.search(r"([A-Za-z]+(?:Error|Timeout))\b", last)
    cause = re.search(r"Caused by \w+\('([^']+)'", last) or re.search(r"Caused by (\w+)", last)
    why = ": ".join(part for part in (error and error.group(1), cause and cause.group(1)) if part)
    return f"the vulnerability service could not be reached ({why or last[:160]})"


def run_pip_audit(
    pins: list[Pin],
    service: str = "pypi",
    timeout: int = 15,
    python: str | None = None,
    env: dict[str, str] | None = None,
) -> Report:
    """pip-audit over exact pins (`--no-deps`, nothing installed) against the online service."""
    report = Report()
    if not pins:
        report.checks.append(
            CheckRun("pip-audit", "PyPI", "skipped", "no pinned Python requirements")
        )
        return report
    python = python or sys.executable
    env = child_environment(env)  # no API keys, tokens or passwords for a network tool
    available = subprocess.run(
        [python, "-c", "import pip_audit"], capture_output=True, timeout=60, env=env
    ).returncode
    if available != 0:
        reason = "pip-audit is not installed (pip install -r requirements.txt)"
        report.checks.append(CheckRun("pip-audit", "PyPI", "failed", reason))
        report.unchecked += [
            Unchecked("PyPI", p.name, p.version, reason, ", ".join(p.sources)) for p in pins
        ]
        return report
    checked = 0
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="releng-deps-") as scratch:
        for number, layer in enumerate(_pin_layers(pins)):
            requirements = Path(scratch) / f"pins-{number}.txt"
            requirements.write_text("".join(f"{p.name}=={p.version}\n" for p in layer))
            argv = [
                python,
                "-m",
                "pip_audit",
                "--requirement",
                str(requirements),
                "--no-deps",
                "--disable-pip",
                "--format",
                "json",
                "--desc",
                "on",
                "--aliases",
                "on",
                "--progress-spinner",
                "off",
                "--vulnerability-service",
                service,
                "--timeout",
                str(timeout),
            ]
            try:
                result = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=max(120, timeout * (len(layer) + 4)),
                    env=env,
                    stdin=subprocess.DEVNULL,
                )
                stdout, stderr, code = result.stdout, result.stderr, result.returncode
            except subprocess.TimeoutExpired:
                stdout, stderr, code = "", "pip-audit timed out", -1
            try:
                parsed = parse_pip_audit(json.loads(stdout), layer) if stdout.strip() else None
            except ValueError:
                parsed = None
            if parsed is None or code not in (0, 1):
                reason = _service_failure(stderr, code)
                failures.append(reason)
                report.unchecked += [
                    Unchecked("PyPI", p.name, p.version, reason, ", ".join(p.sources))
                    for p in layer
                ]
                continue
            report.merge(parsed)
            checked += len(layer) - len({(u.package, u.version) for u in parsed.unchecked})
    status = "failed" if failures else ("incomplete" if checked < len(pins) else "ok")
    looked_up = f"{checked} of {len(pins)} pins looked up in the {service} service"
    detail = f"{failures[0]}; {looked_up}" if failures else looked_up
    report.checks.append(CheckRun("pip-audit", "PyPI", status, detail, checked))
    return report


# --- local advisory database -----------------------------------------------------------------


def check_advisory_database(pins: list[Pin], database: Any) -> Report:
    """Pins against a loaded lib.advisories.AdvisoryDatabase."""
    report = Report()
    for pin in pins:
        for match in database.matches(pin.name, pin.version):
            report.findings.append(
                Finding(
                    ecosystem="PyPI",
                    package=pin.name,
                    version=pin.version,
                    advisory=match.id,
                    fixed_versions=match.fixed_versions,
                    summary=match.summary,
                    aliases=match.aliases,
                    sources=list(pin.sources),
                )
            )
        for advisory, value in database.undecided(pin.name, pin.version):
            report.unchecked.append(
                Unchecked(
                    "PyPI",
                    pin.name,
                    pin.version,
                    f"advisory {advisory} has a range with {value!r}, not a PEP 440 version: "
                    "could not tell whether this version is affected",
                    ", ".join(pin.sources),
                )
            )
    for broken in database.unreadable:
        report.unchecked.append(
            Unchecked("PyPI", "*", "", f"advisory file could not be read: {broken}", "")
        )
    cached = ", cached index" if database.from_cache else ""
    detail = f"{database.path} ({database.files} records{cached})"
    status = "failed" if database.unreadable else "ok"
    detail = f"{len(pins)} pins checked against {detail}"
    report.checks.append(CheckRun("advisory database", "PyPI", status, detail, len(pins)))
    return report


# --- npm audit -------------------------------------------------------------------------------

LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")


def _lock_versions(lock: dict[str, Any]) -> dict[str, str]:
    """node path ("node_modules/a/node_modules/b") -> version, from a v2/v3 lockfile."""
    packages = lock.get("packages")
    if isinstance(packages, dict):
        return {path: str(info.get("version", "")) for path, info in packages.items() if path}
    # lockfileVersion 1: nested "dependencies"
    out: dict[str, str] = {}

    def walk(deps: dict[str, Any], prefix: str) -> None:
        for name, info in deps.items():
            path = f"{prefix}node_modules/{name}"
            out[path] = str(info.get("version", ""))
            walk(info.get("dependencies") or {}, path + "/")

    walk(lock.get("dependencies") or {}, "")
    return out


def _fixed_from_range(vulnerable: str) -> list[str]:
    """Upper bounds of a semver range ("<4.17.21", ">=2.0.0 <2.3.1 || <1.9") = first fixed."""
    return sorted(set(re.findall(r"<(?!=)\s*([0-9][^\s|,]*)", vulnerable)))


def _advisory_id(via: dict[str, Any]) -> str:
    url = str(via.get("url") or "")
    match = re.search(r"(GHSA(?:-[0-9a-z]{4}){3})", url)
    if match:
        return match.group(1)
    return str(via.get("source") or url or via.get("title") or "unknown")


def parse_npm_audit(data: Any, lock: dict[str, Any] | None = None) -> Report:
    """Findings from `npm audit --json` (npm 7+ "vulnerabilities" or npm 6 "advisories")."""
    if not isinstance(data, dict):
        raise ValueError("not npm audit JSON output")
    if "error" in data and "vulnerabilities" not in data and "advisories" not in data:
        error = data.get("error") or {}
        text = (error.get("summary") if isinstance(error, dict) else str(error)) or data.get(
            "message"
        )
        raise ValueError(str(text or "npm audit reported an error").splitlines()[0])
    report = Report()
    versions = _lock_versions(lock or {})
    if isinstance(data.get("vulnerabilities"), dict):
        for name, vuln in sorted(data["vulnerabilities"].items()):
            installed = sorted(
                {versions.get(node, "") for node in vuln.get("nodes") or []} - {""}
            ) or ["?"]
            for via in vuln.get("via") or []:
                if not isinstance(via, dict):
                    continue  # vulnerable only through another package, listed on its own
                vulnerable = str(via.get("range") or vuln.get("range") or "")
                for version in installed:
                    report.findings.append(
                        Finding(
                            ecosystem="npm",
                            package=str(via.get("name") or name),
                            version=version,
                            advisory=_advisory_id(via),
                            fixed_versions=_fixed_from_range(vulnerable),
                            summary=_one_line(str(via.get("title") or "")),
                            aliases=[str(via["url"])] if via.get("url") else [],
                            severity=str(via.get("severity") or vuln.get("severity") or ""),
                            sources=list(vuln.get("nodes") or []),
                        )
                    )
    elif isinstance(data.get("advisories"), dict):
        for advisory in data["advisories"].values():
            found = {
                str(finding.get("version", "?")) for finding in advisory.get("findings") or []
            } or {"?"}
            patched = str(advisory.get("patched_versions") or "")
            fixed = re.findall(r">=\s*([0-9][^\s|,]*)", patched)
            for version in sorted(found):
                report.findings.append(
                    Finding(
                        ecosystem="npm",
                        package=str(advisory.get("module_name", "")),
                        version=version,
                        advisory=str(advisory.get("github_advisory_id") or advisory.get("id")),
                        fixed_versions=fixed,
                        summary=_one_line(str(advisory.get("title") or "")),
                        aliases=[str(a) for a in advisory.get("cves") or []],
                        severity=str(advisory.get("severity") or ""),
                    )
                )
    else:
        raise ValueError("not npm audit JSON output (no vulnerabilities or advisories)")
    return report


def _dependency_count(data: dict[str, Any]) -> int:
    deps = (data.get("metadata") or {}).get("dependencies")
    if isinstance(deps, dict):
        return int(deps.get("total") or sum(v for v in deps.values() if isinstance(v, int)))
    if isinstance(deps, int):
        return deps
    return int((data.get("metadata") or {}).get("totalDependencies") or 0)


def run_npm_audit(npm_dir: Path, timeout: int = 120, env: dict[str, str] | None = None) -> Report:
    """`npm audit --json` in npm_dir; skipped (and listed) without a lockfile or without npm."""
    report = Report()
    lockfile = next((npm_dir / name for name in LOCKFILES if (npm_dir / name).is_file()), None)
    if lockfile is None:
        reason = f"no package-lock.json in {npm_dir}; JavaScript dependencies not checked"
        report.checks.append(CheckRun("npm audit", "npm", "skipped", reason))
        report.unchecked.append(Unchecked("npm", "*", "", reason, str(npm_dir)))
        return report
    npm = shutil.which("npm", path=(env or os.environ).get("PATH"))
    if not npm:
        reason = "npm is not installed (not found on PATH); JavaScript dependencies not checked"
        report.checks.append(CheckRun("npm audit", "npm", "failed", reason))
        report.unchecked.append(Unchecked("npm", "*", "", reason, str(lockfile)))
        return report
    try:
        lock = json.loads(lockfile.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        reason = f"cannot read {lockfile}: {str(error)[:160]}"
        report.checks.append(CheckRun("npm audit", "npm", "failed", reason))
        report.unchecked.append(Unchecked("npm", "*", "", reason, str(lockfile)))
        return report
    child_env = child_environment(env)  # no API keys, tokens or passwords for npm
    child_env.update(npm_config_update_notifier="false", npm_config_fund="false")
    try:
        result = subprocess.run(
            [npm, "audit", "--json"],
            cwd=npm_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env,
            stdin=subprocess.DEVNULL,
        )
        stdout, stderr = result.stdout, result.stderr
    except subprocess.TimeoutExpired:
        stdout, stderr = "", f"npm audit timed out after {timeout} s"
    try:
        data = json.loads(stdout)
        parsed = parse_npm_audit(data, lock)
    except ValueError as error:
        lines = [ln for ln in stderr.splitlines() if ln.strip() and "complete log" not in ln]
        why = str(error) if stdout.strip() else (lines[-1] if lines else "no output")
        reason = f"npm audit could not run: {why[:240]}"
        report.checks.append(CheckRun("npm audit", "npm", "failed", reason))
        report.unchecked.append(Unchecked("npm", "*", "", reason, str(lockfile)))
        return report
    report.merge(parsed)
    report.checks.append(CheckRun("npm audit", "npm", "ok", str(lockfile), _dependency_count(data)))
    return report


# --- output ----------------------------------------------------------------------------------


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render(report: Report, file: Any = None) -> None:
    """The report as tables on the terminal (rich), with a one-line verdict."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    report = report.sorted()
    stream = file or sys.stdout
    width = None
    if not (hasattr(stream, "isatty") and stream.isatty()):
        width = int(os.environ.get("COLUMNS") or 0) or 160  # a log or pipe: no need to squeeze
    console = Console(file=stream, width=width, soft_wrap=False)
    if report.findings:
        table = Table(title="Known vulnerabilities", title_justify="left")
        for column in ("Ecosystem", "Package", "Installed", "Advisory", "Fixed in"):
            table.add_column(column, no_wrap=True)
        table.add_column("Summary", overflow="fold", ratio=1)
        for f in report.findings:
            table.add_row(
                f.ecosystem,
                f.package,
                f.version + "".join(f" ; {escape(marker)}" for marker in f.markers),
                f.advisory,
                ", ".join(f.fixed_versions) or "no fix",
                f.summary,
            )
        console.print(table)
    if report.unchecked:
        table = Table(title="Could not check (not clean!)", title_justify="left")
        for column in ("Ecosystem", "Package", "Version"):
            table.add_column(column, no_wrap=True)
        table.add_column("Reason", overflow="fold", ratio=2)
        table.add_column("Where", overflow="fold", ratio=1)
        for u in report.unchecked:
            table.add_row(u.ecosystem, u.package, u.version or "-", u.reason, u.source)
        console.print(table)
    for check in report.checks:
        console.print(
            f"{check.name} ({check.ecosystem}): {check.status}; {check.detail}",
            highlight=False,
            markup=False,
        )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    packages = len({(f.ecosystem, f.package, f.version) for f in report.findings})
    verdict = {
        EXIT_VULNERABLE: f"VULNERABLE: {len(report.findings)} known vulnerabilities in "
        f"{packages} packages",
        EXIT_INCOMPLETE: "INCOMPLETE: no known vulnerabilities in what was checked, but "
        f"{len(report.unchecked)} item(s) could not be checked",
        EXIT_CLEAN: "CLEAN: no known vulnerabilities",
    }[report.exit_code]
    if report.exit_code == EXIT_VULNERABLE and report.unchecked:
        verdict += f"; {len(report.unchecked)} item(s) could not be checked"
    console.print(verdict, highlight=False, markup=False)
