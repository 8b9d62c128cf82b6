"""deps.check: recorded tool output, the real PyPA advisory database, real pip-audit and npm."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import sys
from pathlib import Path

import pytest

from lib import advisories, audit, requirements_files
from lib.errors import UserError
from lib.requirements_files import Pin
from tests.conftest import PROJECT_ROOT

DATA = Path(__file__).parent / "data"
#: The PyPA advisory database snapshot: $RELENG_ADVISORY_DB, else shared/ beside the clone
#: (where CI and the development layout put it).
PYPA_DB = Path(
    os.environ.get("RELENG_ADVISORY_DB")
    or PROJECT_ROOT.parent / "shared" / "data" / "pypa-advisory-database"
).expanduser()
needs_pypa_db = pytest.mark.skipif(
    not PYPA_DB.is_dir(),
    reason=f"the PyPA advisory database snapshot is absent ({PYPA_DB}); "
    "point RELENG_ADVISORY_DB at a copy",
)


def recorded(name: str):
    return json.loads((DATA / name).read_text())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def index_cache(tmp_path_factory) -> Path:
    """One advisory-index cache for the session, so only the first run parses the database."""
    return tmp_path_factory.mktemp("advisory-index")


@pytest.fixture
def project(tmp_path) -> Path:
    """A service checkout: the cwd of deps.check."""
    path = tmp_path / "service"
    path.mkdir()
    return path


# --- recorded pip-audit output ---------------------------------------------------------------


def test_pip_audit_findings_skips_and_silent_pins():
    pins = [
        Pin("jinja2", "2.10", ["requirements.txt:1"]),
        Pin("requests", "2.31.0", ["requirements.txt:2"]),
        Pin("urllib3", "2.8.0", ["requirements.txt:3"]),
        Pin("socorro-siggen", "0.0.0.dev1", ["requirements.txt:4"]),
        Pin("rich", "15.0.0", ["requirements.txt:5"]),  # absent from the output
    ]
    report = audit.parse_pip_audit(recorded("pip-audit-vulnerable.json"), pins)
    rows = [(f.package, f.version, f.advisory, f.fixed_versions) for f in report.findings]
    assert rows == [
        ("jinja2", "2.10", "PYSEC-2019-217", ["2.10.1"]),
        ("jinja2", "2.10", "PYSEC-2021-66", ["2.11.3"]),
        ("requests", "2.31.0", "GHSA-9wx4-h78v-vm56", ["2.32.0"]),
    ]
    assert report.findings[0].summary.endswith("str.format_map allows a sandbox escape.")
    assert "CVE-2019-10906" in report.findings[0].aliases
    assert report.findings[0].sources == ["requirements.txt:1"]
    unchecked = {(u.package, u.version): u.reason for u in report.unchecked}
    assert unchecked[("socorro-siggen", "0.0.0.dev1")].startswith("pip-audit skipped it")
    assert unchecked[("rich", "15.0.0")] == "pip-audit did not report on it"
    assert report.exit_code == 1


def test_pip_audit_clean_output_is_clean():
    pins = [Pin("jinja2", "3.1.6"), Pin("urllib3", "2.8.0")]
    report = audit.parse_pip_audit(recorded("pip-audit-clean.json"), pins)
    assert report.findings == [] and report.unchecked == []
    assert report.exit_code == 0


def test_pip_audit_not_found_is_not_clean():
    """What this network answers: PyPI 404 for the pinned version, so pip-audit skips it."""
    report = audit.parse_pip_audit(recorded("pip-audit-not-found.json"), [Pin("jinja2", "2.10")])
    assert report.findings == []
    assert [(u.package, u.version) for u in report.unchecked] == [("jinja2", "2.10")]
    assert report.exit_code == 2


def test_pip_audit_garbage_is_rejected():
    with pytest.raises(ValueError):
        audit.parse_pip_audit({"unexpected": True}, [])


# --- recorded npm audit output ---------------------------------------------------------------


def test_npm_audit_v2_with_lockfile_versions():
    lock = json.loads((DATA / "npm-project" / "package-lock.json").read_text())
    report = audit.parse_npm_audit(recorded("npm-audit-v2.json"), lock)
    rows = [
        (f.package, f.version, f.advisory, f.fixed_versions, f.severity) for f in report.findings
    ]
    assert rows == [
        ("lodash", "4.17.20", "GHSA-35jh-r3h4-6jhm", ["4.17.21"], "high"),
        ("lodash", "4.17.20", "GHSA-29mw-wpgm-hmr9", ["4.17.21"], "moderate"),
        ("minimist", "0.0.8", "GHSA-xvch-5gv4-984h", ["0.2.4"], "critical"),
    ]  # mkdirp is vulnerable only through minimist, which is listed itself
    assert report.findings[0].summary == "Command Injection in lodash"
    assert all(f.ecosystem == "npm" for f in report.findings)


def test_npm_audit_v6_advisories():
    report = audit.parse_npm_audit(recorded("npm-audit-v6.json"))
    assert [(f.package, f.version, f.advisory, f.fixed_versions) for f in report.findings] == [
        ("lodash", "4.17.11", "GHSA-p6mc-m468-83gw", ["4.17.19"])
    ]
    assert report.findings[0].aliases == ["CVE-2019-10744"]


def test_npm_audit_error_output_is_not_a_report():
    with pytest.raises(ValueError, match="405 Method Not Allowed"):
        audit.parse_npm_audit(recorded("npm-audit-error-405.json"))


def test_npm_audit_clean():
    report = audit.parse_npm_audit(recorded("npm-audit-clean.json"))
    assert report.findings == [] and report.exit_code == 0


def test_fixed_versions_from_semver_ranges():
    assert audit._fixed_from_range("<4.17.21") == ["4.17.21"]
    assert audit._fixed_from_range(">=2.0.0 <2.3.1 || <1.9.3") == ["1.9.3", "2.3.1"]
    assert audit._fixed_from_range("<=4.17.20") == []


# --- merging and exit codes --------------------------------------------------------------------


def test_merged_report_and_the_three_exit_codes():
    lock = json.loads((DATA / "npm-project" / "package-lock.json").read_text())
    python = audit.parse_pip_audit(recorded("pip-audit-clean.json"), [Pin("jinja2", "3.1.6")])
    assert python.exit_code == 0
    merged = audit.Report()
    merged.merge(python)
    merged.merge(audit.parse_npm_audit(recorded("npm-audit-v2.json"), lock))
    assert merged.exit_code == 1
    incomplete = audit.Report(unchecked=[audit.Unchecked("PyPI", "x", "", "not pinned")])
    assert incomplete.exit_code == 2 and incomplete.status == "incomplete"
    failed = audit.Report(checks=[audit.CheckRun("npm audit", "npm", "failed", "npm missing")])
    assert failed.exit_code == 2
    both = audit.Report(findings=merged.findings, unchecked=incomplete.unchecked)
    assert both.exit_code == 1  # vulnerabilities win, the unchecked item is still listed
    data = both.to_json()
    assert data["status"] == "vulnerable" and len(data["could_not_check"]) == 1
    assert {v["ecosystem"] for v in data["vulnerabilities"]} == {"npm"}


# --- requirements files ------------------------------------------------------------------------


def test_requirements_scan_pins_and_everything_that_is_not(tmp_path):
    (tmp_path / "base.txt").write_text("Jinja2==2.10  # templates\nurllib3===2.8.0\n")
    (tmp_path / "requirements.txt").write_text(
        "# the service\n"
        "-r base.txt\n"
        "--index-url https://pypi.org/simple\n"
        "-c constraints.txt\n"
        "requests==2.31.0 \\\n"
        "    --hash=sha256:58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f\n"
        "pywin32==306 ; sys_platform == 'win32'\n"
        "django>=4.2\n"
        "attrs\n"
        "six==1.*\n"
        "-e ./socorro-lib\n"
        "mylib @ https://example.com/mylib-1.0.tar.gz\n"
        "jinja2==2.10\n"
    )
    scan = requirements_files.scan([tmp_path / "requirements.txt"])
    assert [(p.name, p.version) for p in scan.pins] == [
        ("jinja2", "2.10"),
        ("urllib3", "2.8.0"),
        ("requests", "2.31.0"),
        ("pywin32", "306"),
    ]
    assert scan.pins[0].sources == [
        f"{tmp_path / 'base.txt'}:1",
        f"{tmp_path / 'requirements.txt'}:13",
    ]
    reasons = {(n.name or n.requirement): n.reason for n in scan.not_pinned}
    assert reasons == {
        "django": "not pinned to one version (==)",
        "attrs": "not pinned to one version (==)",
        "six": "not pinned to one version (==)",
        "-e ./socorro-lib": "editable install, not a PyPI release",
        "mylib": "direct URL reference, not a PyPI release",
    }


def test_requirements_scan_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="requirements file .*nope.txt not found"):
        requirements_files.scan([tmp_path / "nope.txt"])
    (tmp_path / "r.txt").write_text("-r missing.txt\n")
    with pytest.raises(UserError, match="included from .*r.txt:1"):
        requirements_files.scan([tmp_path / "r.txt"])
    (tmp_path / "bad.txt").write_text("jinja2 === = 2\n")
    with pytest.raises(UserError, match=r"bad.txt:1: cannot parse requirement"):
        requirements_files.scan([tmp_path / "bad.txt"])


def test_requirements_include_cycle_is_read_once(tmp_path):
    (tmp_path / "a.txt").write_text("-r b.txt\njinja2==2.10\n")
    (tmp_path / "b.txt").write_text("-r a.txt\nurllib3==2.8.0\n")
    scan = requirements_files.scan([tmp_path / "a.txt"])
    assert sorted(p.name for p in scan.pins) == ["jinja2", "urllib3"]


# --- the offline advisory database -------------------------------------------------------------


@needs_pypa_db
def test_pypa_database_jinja2_sandbox_escape(index_cache):
    db = advisories.load(PYPA_DB, index_cache)
    matches = {m.id: m for m in db.matches("Jinja2", "2.10")}
    assert "PYSEC-2019-217" in matches
    assert matches["PYSEC-2019-217"].fixed_versions == ["2.10.1"]
    assert "sandbox escape" in matches["PYSEC-2019-217"].summary
    assert "CVE-2019-10906" in matches["PYSEC-2019-217"].aliases
    assert "PYSEC-2019-217" not in {m.id for m in db.matches("jinja2", "2.10.1")}
    assert db.matches("jinja2", "3.1.6") == []
    assert db.unreadable == []


@needs_pypa_db
def test_pypa_database_index_is_cached_and_reused(tmp_path):
    first = advisories.load(PYPA_DB, tmp_path)
    second = advisories.load(PYPA_DB, tmp_path)
    assert not first.from_cache and second.from_cache
    assert second.files == first.files > 2000
    assert [m.id for m in second.matches("jinja2", "2.10")] == [
        m.id for m in first.matches("jinja2", "2.10")
    ]


def _write_osv(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_osv_range_semantics_on_a_small_database(tmp_path):
    db_dir = tmp_path / "db"
    _write_osv(
        db_dir,
        "vulns/demo/PYSEC-1.yaml",
        "id: PYSEC-1\nsummary: two ranges\naffected:\n"
        "- package: {name: Demo_Pkg, ecosystem: PyPI}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: '1.0'\n    - fixed: 1.2.5\n"
        "    - introduced: '2.0'\n    - fixed: 2.0.3\n",
    )
    _write_osv(
        db_dir,
        "vulns/demo/PYSEC-2.yaml",
        "id: PYSEC-2\ndetails: last affected\naffected:\n"
        "- package: {name: demo.pkg, ecosystem: PyPI}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: '0'\n"
        "    - last_affected: '0.9'\n",
    )
    _write_osv(
        db_dir,
        "vulns/demo/PYSEC-3.json",
        json.dumps(
            {
                "id": "PYSEC-3",
                "details": "explicit versions only",
                "affected": [
                    {"package": {"name": "demo-pkg", "ecosystem": "PyPI"}, "versions": ["3.1"]}
                ],
            }
        ),
    )
    _write_osv(
        db_dir,
        "vulns/demo/PYSEC-4.yaml",
        "id: PYSEC-4\nwithdrawn: '2024-01-01T00:00:00Z'\ndetails: withdrawn\naffected:\n"
        "- package: {name: demo-pkg, ecosystem: PyPI}\n  versions: ['3.1']\n",
    )
    _write_osv(
        db_dir,
        "other/NPM-1.yaml",
        "id: NPM-1\ndetails: other ecosystem\naffected:\n"
        "- package: {name: demo-pkg, ecosystem: npm}\n"
        "  versions: ['3.1']\n",
    )
    db = advisories.load(db_dir, tmp_path / "cache")

    def ids(version):
        return [m.id for m in db.matches("DEMO-PKG", version)]

    assert ids("0.5") == ["PYSEC-2"]
    assert ids("0.9") == ["PYSEC-2"]
    assert ids("0.9.1") == []
    assert ids("1.0") == ["PYSEC-1"]
    assert ids("1.2.4") == ["PYSEC-1"]
    assert ids("1.2.5") == []
    assert ids("2.0.2") == ["PYSEC-1"]
    assert ids("2.0.3") == []
    assert ids("3.1.0") == ["PYSEC-3"]  # 3.1 == 3.1.0 in PEP 440
    assert db.matches("demo-pkg", "1.1")[0].fixed_versions == ["1.2.5", "2.0.3"]
    assert db.matches("demo-pkg", "2.0.1")[0].fixed_versions == ["2.0.3"]

    # A change to any file rebuilds the index; a broken file is reported, not ignored.
    _write_osv(db_dir, "vulns/demo/PYSEC-5.yaml", "id: [unclosed\n")
    rebuilt = advisories.load(db_dir, tmp_path / "cache")
    assert not rebuilt.from_cache
    assert len(rebuilt.unreadable) == 1 and "PYSEC-5.yaml" in rebuilt.unreadable[0]
    report = audit.check_advisory_database([Pin("demo-pkg", "9.0")], rebuilt)
    assert report.findings == [] and report.exit_code == 2


def test_advisory_database_input_errors(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        advisories.load(tmp_path / "missing", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no OSV records"):
        advisories.load(tmp_path / "empty", tmp_path)


# --- end to end: the real invoke binary --------------------------------------------------------


@needs_pypa_db
def test_offline_known_vulnerable_pin_exits_1_and_lists_the_advisory(invoke, project, index_cache):
    (project / "requirements.txt").write_text("Jinja2==2.10\nurllib3==2.8.0\n")
    result = invoke(
        "deps.check",
        "--advisory-db",
        str(PYPA_DB),
        cwd=project,
        extra_env={"INVOKE_DEPS_CACHE_DIR": str(index_cache)},
    )
    assert result.returncode == 1, result.stderr
    assert "PYSEC-2019-217" in result.stdout
    assert "str.format_map allows a sandbox escape" in result.stdout
    assert "2.10.1" in result.stdout
    assert "VULNERABLE" in result.stdout


@needs_pypa_db
def test_offline_json_report(invoke, project, index_cache):
    (project / "requirements.txt").write_text("jinja2==2.10\n")
    result = invoke(
        "deps.check",
        "--json",
        "--advisory-db",
        str(PYPA_DB),
        cwd=project,
        extra_env={"INVOKE_DEPS_CACHE_DIR": str(index_cache)},
    )
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "vulnerable" and data["exit_code"] == 1
    sandbox = [v for v in data["vulnerabilities"] if v["advisory"] == "PYSEC-2019-217"]
    assert sandbox == [
        {
            "ecosystem": "PyPI",
            "package": "jinja2",
            "version": "2.10",
            "advisory": "PYSEC-2019-217",
            "fixed_versions": ["2.10.1"],
            "summary": "In Pallets Jinja before 2.10.1, str.format_map allows a sandbox escape.",
            "aliases": ["CVE-2019-10906", "GHSA-462w-v97r-4m45"],
            "severity": "",
            "sources": ["requirements.txt:1"],
            "markers": [],
        }
    ]
    assert data["could_not_check"] == []


@needs_pypa_db
def test_offline_clean_pins_exit_0(invoke, project, index_cache):
    (project / "reqs").mkdir()
    (project / "reqs" / "prod.txt").write_text("jinja2==3.1.6\nurllib3==2.8.0\n")
    cfg = project / "cfg.yaml"
    cfg.write_text(
        f"deps:\n  requirements: [reqs/prod.txt]\n  advisory_db: {PYPA_DB}\n"
        f"  cache_dir: {index_cache}\n"
    )
    result = invoke("-f", str(cfg), "deps.check", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CLEAN: no known vulnerabilities" in result.stdout


@needs_pypa_db
def test_offline_unpinned_requirement_is_never_clean(invoke, project, index_cache):
    (project / "requirements.txt").write_text("jinja2==3.1.6\ndjango>=4.2\n")
    result = invoke(
        "deps.check",
        "--advisory-db",
        str(PYPA_DB),
        cwd=project,
        extra_env={"INVOKE_DEPS_CACHE_DIR": str(index_cache)},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "django" in result.stdout and "not pinned to one version" in result.stdout
    assert "INCOMPLETE" in result.stdout and "CLEAN" not in result.stdout


def test_pip_audit_for_real_with_the_service_unreachable_exits_2(invoke, project):
    """pip-audit runs for real; the vulnerability service is made unreachable by a proxy
    address where nothing listens. That must be exit 2 (could not check), never 0."""
    (project / "requirements.txt").write_text("jinja2==2.10\n")
    port = _closed_port()
    proxy = f"http://127.0.0.1:{port}"
    result = invoke(
        "deps.check",
        "--json",
        cwd=project,
        extra_env={
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "HTTP_PROXY": proxy,
            "http_proxy": proxy,
            "INVOKE_DEPS_TIMEOUT": "5",
        },
        timeout=180,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "incomplete"
    assert [(u["package"], u["version"]) for u in data["could_not_check"]] == [("jinja2", "2.10")]
    assert "could not be reached" in data["could_not_check"][0]["reason"]
    assert data["checks"][0]["name"] == "pip-audit" and data["checks"][0]["status"] == "failed"


def test_pip_audit_for_real_table_output_names_what_was_not_checked(invoke, project):
    (project / "requirements.txt").write_text("urllib3==2.8.0\nrequests\n")
    proxy = f"http://127.0.0.1:{_closed_port()}"
    result = invoke(
        "deps.check",
        cwd=project,
        extra_env={"HTTPS_PROXY": proxy, "https_proxy": proxy, "INVOKE_DEPS_TIMEOUT": "5"},
        timeout=180,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Could not check" in result.stdout
    assert "urllib3" in result.stdout and "requests" in result.stdout
    assert "INCOMPLETE" in result.stdout


def _npm_project(tmp_path: Path) -> Path:
    target = tmp_path / "webapp"
    shutil.copytree(DATA / "npm-project", target)
    return target


@needs_pypa_db
def test_npm_for_real_with_the_registry_unreachable_exits_2(invoke, project, index_cache):
    if not shutil.which("npm"):
        pytest.skip("npm is not installed")
    (project / "requirements.txt").write_text("jinja2==3.1.6\n")
    webapp = _npm_project(project)
    result = invoke(
        "deps.check",
        "--json",
        "--advisory-db",
        str(PYPA_DB),
        "--npm-dir",
        str(webapp),
        cwd=project,
        extra_env={
            "INVOKE_DEPS_CACHE_DIR": str(index_cache),
            "npm_config_registry": f"http://127.0.0.1:{_closed_port()}/",
            "npm_config_fetch_retries": "0",
            "npm_config_cache": str(project / "npm-cache"),
        },
        timeout=180,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    data = json.loads(result.stdout)
    npm = [u for u in data["could_not_check"] if u["ecosystem"] == "npm"]
    assert len(npm) == 1 and npm[0]["reason"].startswith("npm audit could not run")
    assert data["vulnerabilities"] == []


@needs_pypa_db
def test_npm_recorded_output_merges_with_python_findings(invoke, project, index_cache, tmp_path):
    """npm replaced by a script that replays a recorded `npm audit --json` (npm 11 shape),
    since no audit service is reachable here; our subprocess handling and merge run for real."""
    (project / "requirements.txt").write_text("jinja2==2.10\n")
    webapp = _npm_project(project)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(
        "#!/bin/sh\n"
        '[ "$1 $2" = "audit --json" ] || { echo "unexpected: $*" >&2; exit 9; }\n'
        f'[ -f package-lock.json ] || exit 8\ncat "{DATA / "npm-audit-v2.json"}"\nexit 1\n'
    )
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    result = invoke(
        "deps.check",
        "--json",
        "--advisory-db",
        str(PYPA_DB),
        "--npm-dir",
        str(webapp),
        cwd=project,
        extra_env={
            "INVOKE_DEPS_CACHE_DIR": str(index_cache),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        },
    )
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(result.stdout)
    found = {
        (v["ecosystem"], v["package"], v["version"], v["advisory"]) for v in data["vulnerabilities"]
    }
    assert ("PyPI", "jinja2", "2.10", "PYSEC-2019-217") in found
    assert ("npm", "lodash", "4.17.20", "GHSA-35jh-r3h4-6jhm") in found
    assert ("npm", "minimist", "0.0.8", "GHSA-xvch-5gv4-984h") in found
    assert [c["status"] for c in data["checks"]] == ["ok", "ok"]
    assert data["could_not_check"] == []


@needs_pypa_db
def test_npm_missing_or_no_lockfile_is_listed_and_exits_2(invoke, project, index_cache, tmp_path):
    (project / "requirements.txt").write_text("jinja2==3.1.6\n")
    webapp = _npm_project(project)
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    result = invoke(
        "deps.check",
        "--advisory-db",
        str(PYPA_DB),
        "--npm-dir",
        str(webapp),
        cwd=project,
        extra_env={"INVOKE_DEPS_CACHE_DIR": str(index_cache), "PATH": str(empty_bin)},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "npm is not installed" in result.stdout

    (webapp / "package-lock.json").unlink()
    result = invoke(
        "deps.check",
        "--json",
        "--advisory-db",
        str(PYPA_DB),
        "--npm-dir",
        str(webapp),
        cwd=project,
        extra_env={"INVOKE_DEPS_CACHE_DIR": str(index_cache)},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["checks"][-1]["status"] == "skipped"
    assert "no package-lock.json" in data["could_not_check"][0]["reason"]


def test_bad_inputs_are_one_line_errors_with_exit_2(invoke, project):
    (project / "requirements.txt").write_text("jinja2==3.1.6\n")
    cases = [
        (["deps.check", "--requirements", "nope.txt"], "requirements file nope.txt not found"),
        (["deps.check", "--npm-dir", "no-such-dir"], "does not exist"),
        (["deps.check", "--advisory-db", "no-such-db"], "is not a directory"),
        (["deps.check", "--requirements", "-x"], "must not start with '-'"),
        (["deps.check", "--requirements="], "--requirements is empty; give a requirements file"),
        (["deps.check", "-r", "nope.txt"], "deps.check has no -r flag"),  # not --search-root
        (["deps.check", "--requirements", " "], "--requirements is empty"),
        (["deps.check", "--requirements", "."], "requirements file . is a directory, not a file"),
        (["deps.check", "--requirements", "inc.txt"], "sub is a directory, not a file (included"),
    ]
    (project / "sub").mkdir()
    (project / "inc.txt").write_text("-r sub\n")
    for args, message in cases:
        result = invoke(*args, cwd=project)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert result.stdout == ""

    empty = project / "empty"
    empty.mkdir()
    result = invoke("deps.check", cwd=empty)
    assert result.returncode == 2
    assert "requirements file requirements.txt not found" in result.stderr


def test_repeatable_requirements_flag(invoke, project, tmp_path):
    db_dir = tmp_path / "db"
    _write_osv(
        db_dir,
        "PYSEC-9.yaml",
        "id: PYSEC-9\ndetails: Demo flaw.\naffected:\n- package: {name: demo, ecosystem: PyPI}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: '0'\n    - fixed: '2.0'\n",
    )
    (project / "a.txt").write_text("other==1.0\n")
    (project / "b.txt").write_text("demo==1.5\n")
    args = ["deps.check", "--json", "--advisory-db", str(db_dir)]
    only_a = invoke(*args, "--requirements", "a.txt", cwd=project)
    assert only_a.returncode == 0, only_a.stderr
    both = invoke(*args, "--requirements", "a.txt", "--requirements", "b.txt", cwd=project)
    assert both.returncode == 1, both.stderr
    data = json.loads(both.stdout)
    assert [(v["package"], v["fixed_versions"], v["sources"]) for v in data["vulnerabilities"]] == [
        ("demo", ["2.0"], ["b.txt:1"])
    ]
    assert data["checks"][0]["checked"] == 2


def test_pip_audit_missing_is_exit_2(tmp_path):
    """A Python without pip-audit: every pin is listed as not checked."""
    python = tmp_path / "python-without-pip-audit"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    python.chmod(0o755)
    report = audit.run_pip_audit([Pin("jinja2", "2.10", ["r.txt:1"])], python=str(python))
    assert report.exit_code == 2
    assert report.unchecked[0].reason.startswith("pip-audit is not installed")


def test_pip_audit_normalised_versions_match_the_pins():
    data = {"dependencies": [{"name": "Demo_Pkg", "version": "1.0b0", "vulns": []}]}
    report = audit.parse_pip_audit(data, [Pin("demo-pkg", "1.0-beta", ["r.txt:1"])])
    assert report.unchecked == [] and report.exit_code == 0


def test_dry_run_validates_and_prints_the_plan_without_running_anything(invoke, project, tmp_path):
    (project / "requirements.txt").write_text("jinja2==2.10\ndjango>=4\n")
    empty_bin = tmp_path / "no-tools"
    empty_bin.mkdir()
    result = invoke("--dry", "deps.check", cwd=project, extra_env={"PATH": str(empty_bin)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "would check 1 pinned Python requirements from requirements.txt with pip-audit "
        "(online); 1 not pinned",
        "no JavaScript check",
    ]
    bad = invoke("--dry", "deps.check", "--requirements", "missing.txt", cwd=project)
    assert bad.returncode == 2 and "not found" in bad.stderr


#: Secrets of the caller's environment that neither pip-audit nor npm may inherit.
_SECRETS = {
    "BUGZILLA_API_KEY": "bz-key-not-for-tools",
    "SOCORRO_REPROCESS_API_TOKEN": "reprocess-token-not-for-tools",
    "CRASHSTATS_API_TOKEN": "crashstats-token-not-for-tools",
    "INVOKE_DB_PASSWORD": "db-password-not-for-tools",
    "PGPASSWORD": "pg-password-not-for-tools",
}


def _dumped_environments(path: Path) -> list[dict[str, str]]:
    """The environments a tool script wrote (`env -0`, one file per run, separated)."""
    runs = [run for run in path.read_bytes().split(b"\0--end--\0") if run.strip(b"\0")]
    return [
        dict(item.decode().split("=", 1) for item in run.split(b"\0") if b"=" in item)
        for run in runs
    ]


def test_pip_audit_gets_none_of_our_secrets(tmp_path):
    """pip-audit runs through a python that records its environment (and answers for
    pip-audit with a clean report): neither run sees an API key, token or password."""
    dump = tmp_path / "env.dump"
    python = tmp_path / "python-recording-env"
    clean = json.dumps({"dependencies": [{"name": "jinja2", "version": "3.1.6", "vulns": []}]})
    python.write_text(
        "#!/bin/sh\n"
        f'env -0 >> "{dump}"; printf "\\0--end--\\0" >> "{dump}"\n'
        f'[ "$1" = "-c" ] && exec "{sys.executable}" "$@"\n'
        f"echo '{clean}'\n"
    )
    python.chmod(0o755)
    caller = {"PATH": os.environ.get("PATH", ""), **_SECRETS}
    report = audit.run_pip_audit(
        [Pin("jinja2", "3.1.6", ["r.txt:1"])], python=str(python), env=caller
    )
    assert report.exit_code == 0, report
    environments = _dumped_environments(dump)
    assert len(environments) == 2  # the `import pip_audit` probe and pip-audit itself
    for environment in environments:
        assert environment["PATH"] == caller["PATH"]
        assert not set(_SECRETS) & set(environment), environment.keys()
        assert not [v for v in _SECRETS.values() if v in "".join(environment.values())]


def test_npm_gets_none_of_our_secrets(invoke, project, tmp_path):
    """The real invoke with the secrets in its environment; npm is a script that records
    its environment and replays a recorded clean `npm audit --json`."""
    db_dir = tmp_path / "db"
    _write_osv(
        db_dir,
        "PYSEC-9.yaml",
        "id: PYSEC-9\ndetails: Demo flaw.\naffected:\n- package: {name: demo, ecosystem: PyPI}\n"
        "  versions: ['1.0']\n",
    )
    (project / "requirements.txt").write_text("other==1.0\n")
    webapp = _npm_project(project)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dump = tmp_path / "npm-env.dump"
    npm = bin_dir / "npm"
    npm.write_text(
        "#!/bin/sh\n"
        f'env -0 >> "{dump}"; printf "\\0--end--\\0" >> "{dump}"\n'
        f'cat "{DATA / "npm-audit-clean.json"}"\n'
    )
    npm.chmod(0o755)
    result = invoke(
        "deps.check",
        "--json",
        "--advisory-db",
        str(db_dir),
        "--npm-dir",
        str(webapp),
        cwd=project,
        extra_env={"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", **_SECRETS},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c["status"] for c in json.loads(result.stdout)["checks"]] == ["ok", "ok"]
    [environment] = _dumped_environments(dump)
    assert not set(_SECRETS) & set(environment), environment.keys()
    assert not [v for v in _SECRETS.values() if v in "".join(environment.values())]


def test_long_flags_only_with_their_help_texts(invoke):
    result = invoke("--help", "deps.check")
    assert result.returncode == 0, result.stderr
    options = result.stdout.split("Options:", 1)[1]
    for flag in ("advisory-db", "json", "npm-dir", "requirements"):
        assert f"  --{flag}" in options, flag
    assert not re.search(r"^  -\w", options, re.MULTILINE), options  # no `-a STRING, --...`
    assert "requirements file to audit (repeatable" in options


def _demo_database(tmp_path: Path) -> Path:
    """demo < 2.0 is affected (PYSEC-9); PYSEC-10's range cannot be evaluated."""
    db_dir = tmp_path / "db"
    _write_osv(
        db_dir,
        "PYSEC-9.yaml",
        "id: PYSEC-9\ndetails: Demo flaw.\naffected:\n- package: {name: demo, ecosystem: PyPI}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: '0'\n    - fixed: '2.0'\n",
    )
    _write_osv(
        db_dir,
        "PYSEC-10.yaml",
        "id: PYSEC-10\ndetails: Odd range.\naffected:\n- package: {name: demo, ecosystem: PyPI}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: not a version\n"
        "    - fixed: '3.0'\n",
    )
    return db_dir


def test_empty_requirements_file_is_not_clean(invoke, project, tmp_path):
    db_dir = _demo_database(tmp_path)
    (project / "requirements.txt").write_text(
        "# nothing pinned yet\n--index-url https://x.invalid\n"
    )
    result = invoke("deps.check", "--advisory-db", str(db_dir), cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no requirements in requirements.txt: nothing was checked" in result.stdout
    assert "CLEAN" not in result.stdout and "INCOMPLETE" in result.stdout
    as_json = invoke("deps.check", "--json", "--advisory-db", str(db_dir), cwd=project)
    assert as_json.returncode == 2
    data = json.loads(as_json.stdout)
    assert data["status"] == "incomplete"
    assert data["could_not_check"][0]["reason"].startswith("no requirements in requirements.txt")
    assert data["checks"] == [
        {
            "name": "Python",
            "ecosystem": "PyPI",
            "status": "skipped",
            "detail": "no pinned Python requirements",
            "checked": 0,
        }
    ]


def test_advisory_with_an_unparsable_range_version_is_listed_not_dropped(invoke, project, tmp_path):
    db_dir = _demo_database(tmp_path)
    (project / "requirements.txt").write_text("demo==2.5\n")
    result = invoke("deps.check", "--json", "--advisory-db", str(db_dir), cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["vulnerabilities"] == []
    [undecided] = data["could_not_check"]
    assert (undecided["package"], undecided["version"], undecided["source"]) == (
        "demo",
        "2.5",
        "requirements.txt:1",
    )
    assert "advisory PYSEC-10 has a range with 'not a version'" in undecided["reason"]
    # A pin that another advisory matches is vulnerable, and the undecided one is listed too.
    (project / "requirements.txt").write_text("demo==1.0\n")
    table = invoke("deps.check", "--advisory-db", str(db_dir), cwd=project)
    assert table.returncode == 1, table.stdout + table.stderr
    assert "PYSEC-9" in table.stdout and "PYSEC-10" in table.stdout
    assert "1 item(s) could not be checked" in table.stdout


def test_environment_markers_are_checked_and_shown(invoke, project, tmp_path):
    db_dir = _demo_database(tmp_path)
    (project / "requirements.txt").write_text('Demo==1.5 ; python_version < "3"\nother==1.0\n')
    table = invoke("deps.check", "--advisory-db", str(db_dir), cwd=project)
    assert table.returncode == 1, table.stdout + table.stderr
    assert '1.5 ; python_version < "3"' in table.stdout
    assert (
        'note: demo==1.5 (requirements.txt:1) has the environment marker `python_version < "3"`; '
        "it was checked whatever the marker says"
    ) in table.stdout
    data = json.loads(
        invoke("deps.check", "--json", "--advisory-db", str(db_dir), cwd=project).stdout
    )
    assert [(v["package"], v["markers"]) for v in data["vulnerabilities"]] == [
        ("demo", ['python_version < "3"'])
    ]


def test_advisory_database_location_from_the_environment(tmp_path):
    """RELENG_ADVISORY_DB points the tests (and the benchmark) at the snapshot; without it,
    the snapshot beside the clone is used."""
    import subprocess

    elsewhere = tmp_path / "my copy"
    elsewhere.mkdir()
    code = (
        "import tests.test_deps as t, bench.bench_db_deps as b; print(t.PYPA_DB); print(b.PYPA_DB)"
    )
    base = {k: v for k, v in os.environ.items() if k != "RELENG_ADVISORY_DB"}
    for extra, expected in [
        ({"RELENG_ADVISORY_DB": str(elsewhere)}, elsewhere),
        ({}, PROJECT_ROOT.parent / "shared" / "data" / "pypa-advisory-database"),
    ]:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=PROJECT_ROOT,
            env={**base, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [str(expected)] * 2
