"""db.connect and db.url against a real PostgreSQL 15 started by the tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib import database as devdb
from tests.conftest import PROJECT_ROOT
from tests.pg_server import pg_server  # noqa: F401  (the session fixture)


def _config(tmp_path: Path, server, **overrides) -> Path:
    """A runtime config file (invoke -f) pointing db.* at the test server."""
    values = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "database": server.database,
    }
    values.update(overrides)
    path = tmp_path / "db.yaml"
    lines = ["db:"] + [
        f"  {k}: {v!r}" if isinstance(v, str) else f"  {k}: {v}" for k, v in values.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_select_1_prints_1_and_exits_0(invoke, pg_server, tmp_path):  # noqa: F811
    cfg = _config(tmp_path, pg_server)
    result = invoke("-f", str(cfg), "db.connect", "--command", "select 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:4] == ["?column?", "----------", "1", "(1"]
    assert pg_server.password not in result.stdout + result.stderr


def test_password_from_invoke_env_override_and_raw_output(invoke, pg_server):  # noqa: F811
    result = invoke(
        "db.connect",
        "--raw",
        "--command",
        "select current_database() || ' ' || current_user",
        extra_env={
            "INVOKE_DB_HOST": pg_server.host,
            "INVOKE_DB_PORT": str(pg_server.port),
            "INVOKE_DB_PASSWORD": pg_server.password,
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "breakpad postgres\n"


def test_flags_override_config(invoke, pg_server, tmp_path):  # noqa: F811
    if "other_db" not in pg_server.psql("select datname from pg_database").split():
        pg_server.psql('CREATE DATABASE "other_db"')
    cfg = _config(tmp_path, pg_server, host="db.invalid", port=1, database="nope")
    result = invoke(
        "-f",
        str(cfg),
        "db.connect",
        "--host",
        pg_server.host,
        "--port",
        str(pg_server.port),
        "--database",
        "other_db",
        "--user",
        "postgres",
        "--raw",
        "--command",
        "select current_database()",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "other_db\n"


def test_sql_error_exits_with_psqls_code_and_shows_psqls_message(invoke, pg_server, tmp_path):  # noqa: F811
    cfg = _config(tmp_path, pg_server)
    result = invoke("-f", str(cfg), "db.connect", "--command", "select * from no_such_table")
    assert result.returncode == 1
    assert 'relation "no_such_table" does not exist' in result.stderr


def test_writes_really_happen(invoke, pg_server, tmp_path):  # noqa: F811
    cfg = _config(tmp_path, pg_server)
    result = invoke(
        "-f", str(cfg), "db.connect", "--command", "create table if not exists t_written (x int)"
    )
    assert result.returncode == 0, result.stderr
    assert "t_written" in pg_server.psql("select tablename from pg_tables", database="breakpad")


def test_nothing_listening_is_one_line_and_nonzero(invoke, tmp_path):
    port = _closed_port()
    result = invoke(
        "db.connect",
        "--command",
        "select 1",
        extra_env={"INVOKE_DB_HOST": "127.0.0.1", "INVOKE_DB_PORT": str(port)},
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"nothing listens on 127.0.0.1:{port}" in lines[0]
    assert "docker compose up -d postgresql" in lines[0]
    assert result.stdout == ""


def test_nothing_listening_interactive_too(invoke):
    port = _closed_port()
    result = invoke("db.connect", "--port", str(port), "--host", "127.0.0.1")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: nothing listens on 127.0.0.1:{port}; {devdb.START_HINT}"
    ]


def test_wrong_password_is_its_own_line(invoke, pg_server, tmp_path):  # noqa: F811
    cfg = _config(tmp_path, pg_server, password="not-the-password")
    result = invoke("-f", str(cfg), "db.connect", "--command", "select 1")
    assert result.returncode == 2  # psql's exit code for a failed connection
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: wrong password for user postgres on 127.0.0.1:")
    assert "not-the-password" not in result.stderr + result.stdout


def test_missing_database_is_its_own_line(invoke, pg_server, tmp_path):  # noqa: F811
    cfg = _config(tmp_path, pg_server)
    result = invoke(
        "-f", str(cfg), "db.connect", "--database", "no_such_db", "--command", "select 1"
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: database no_such_db does not exist on 127.0.0.1:")


def test_missing_database_interactive_is_caught_before_launch(invoke, pg_server, tmp_path):  # noqa: F811
    cfg = _config(tmp_path, pg_server, database="no_such_db")
    result = invoke("-f", str(cfg), "db.connect", input="select 1;\n")
    assert result.returncode == 2
    assert "error: database no_such_db does not exist" in result.stderr.strip().splitlines()[-1]


def test_unknown_role_is_its_own_line(invoke, pg_server, tmp_path):  # noqa: F811
    cfg = _config(tmp_path, pg_server, user="nobody_here")
    result = invoke("-f", str(cfg), "db.connect", "--command", "select 1")
    assert result.returncode == 2
    # With scram, PostgreSQL answers an unknown role like a wrong password (no user probing).
    assert result.stderr.strip().count("\n") == 0
    assert "nobody_here" in result.stderr


def test_missing_psql_is_its_own_line(invoke, pg_server, tmp_path):  # noqa: F811
    cfg = _config(tmp_path, pg_server)
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    result = invoke(
        "-f", str(cfg), "db.connect", "--command", "select 1", extra_env={"PATH": str(empty_bin)}
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: psql is not installed (not found on PATH)")


def test_missing_pgcli_is_its_own_line(invoke, pg_server, tmp_path):  # noqa: F811
    if shutil.which("pgcli"):
        pytest.skip("pgcli is installed here")
    cfg = _config(tmp_path, pg_server)
    result = invoke("-f", str(cfg), "db.connect", "--client", "pgcli")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: pgcli is not installed (not found on PATH); " + devdb.CLIENT_INSTALL_HINTS["pgcli"]
    ]


def test_interactive_mode_uses_the_inherited_terminal_streams(invoke, pg_server, tmp_path):  # noqa: F811
    """Without --command psql reads our stdin (a terminal for people; a pipe here)."""
    cfg = _config(tmp_path, pg_server)
    result = invoke("-f", str(cfg), "db.connect", input="select 40 + 2 as answer;\n\\q\n")
    assert result.returncode == 0, result.stderr
    assert "answer" in result.stdout and "42" in result.stdout
    assert pg_server.password not in result.stdout + result.stderr


def _scan_proc_for(secrets: list[bytes], skip_environ_of: set[int]) -> list[str]:
    """Every process whose arguments (or environment, outside `skip_environ_of`) hold one of
    the secrets."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        names = ["cmdline"] if pid in skip_environ_of else ["cmdline", "environ"]
        for name in names:
            try:
                data = (entry / name).read_bytes()
            except OSError:
                continue
            for secret in secrets:
                if secret in data:
                    found.append(f"{pid}/{name}: {data[:200]!r}")
    return found


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def _environ(pid: int) -> dict[str, str] | None:
    """A process's environment; None when it cannot be read or is empty (a zombie's)."""
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    if not data:
        return None
    pairs = (item.split(b"=", 1) for item in data.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _running_psql(
    parent: int,
    deadline: float,
    proc: subprocess.Popen | None = None,
    interactive: bool = False,
) -> int:
    """The pid of `parent`'s psql child once it really runs psql (exec done, not a zombie,
    its environment readable): polled, bounded by `deadline` (a loaded machine is slow).
    `interactive`: the session's psql (no -c), not the connection probe before it."""
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            stat = _stat(pid)
            if comm != "psql" or stat is None or stat[1] != parent or stat[0] in "ZXx":
                continue
            try:
                has_command = b"-c" in (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if has_command == interactive:
                continue
            if _environ(pid) is not None:
                return pid
        time.sleep(0.05)
    raise AssertionError(f"psql never ran under process {parent}")


def _start_invoke(env: dict[str, str], *args: str, **popen: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,  # type: ignore[arg-type]
    )


#: Secrets of the caller's environment that no client may inherit.
_OTHER_SECRETS = {
    "BUGZILLA_API_KEY": "bz-key-not-for-psql",
    "SOCORRO_REPROCESS_API_TOKEN": "reprocess-token-not-for-psql",
    "CRASHSTATS_API_TOKEN": "crashstats-token-not-for-psql",
}


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_password_never_in_process_arguments_or_psql_environment(env, pg_server, tmp_path):  # noqa: F811
    """While psql runs, no process's arguments (nor any environment but invoke's own) hold
    the password or the caller's other secrets; psql's environment has none of them.

    The password is handed to invoke through INVOKE_DB_PASSWORD (so only the invoke process
    itself has it in its environment); psql must see neither it nor PGPASSWORD, nor the
    Bugzilla key and Crash Stats tokens. The scan starts once psql really runs (exec done),
    so that a slow machine cannot catch the forked child before exec (still holding invoke's
    environment) or psql as a zombie (an empty environment).
    """
    cfg = _config(tmp_path, pg_server, password="placeholder-not-used")
    cfg.write_text(cfg.read_text().replace("  password: 'placeholder-not-used'\n", ""))
    full_env = dict(
        env, INVOKE_DB_PASSWORD=pg_server.password, PGPASSWORD="stale-user-value", **_OTHER_SECRETS
    )
    proc = _start_invoke(
        full_env,
        "-f",
        str(cfg),
        "db.connect",
        "--command",
        "select pg_sleep(3)",
        stdin=subprocess.DEVNULL,
    )
    secrets = [pg_server.password.encode(), *(v.encode() for v in _OTHER_SECRETS.values())]
    try:
        psql = _running_psql(proc.pid, time.monotonic() + 60, proc)
        environ = _environ(psql)
        leaks = _scan_proc_for(secrets, skip_environ_of={proc.pid, os.getpid()})
        # That scan saw psql alive: its environment was read after exec, before it exited.
        still_running = _stat(psql)
        deadline = time.monotonic() + 30
        while proc.poll() is None and _stat(psql) is not None and time.monotonic() < deadline:
            leaks += _scan_proc_for(secrets, skip_environ_of={proc.pid, os.getpid()})
            time.sleep(0.1)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert still_running is not None and still_running[0] not in "ZXx"
    assert environ is not None and "PGPASSFILE" in environ
    for name in ("PGPASSWORD", "INVOKE_DB_PASSWORD", *_OTHER_SECRETS):
        assert name not in environ, name
    assert not [s for s in secrets if any(s.decode() in v for v in environ.values())]
    assert leaks == []
    assert pg_server.password not in out + err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize(
    "mode, signum",
    [
        ("command", signal.SIGTERM),
        ("command", signal.SIGHUP),
        ("command", signal.SIGINT),
        ("interactive", signal.SIGTERM),
        ("interactive", signal.SIGHUP),
    ],
    ids=lambda value: getattr(value, "name", value),
)
def test_signal_stops_psql_and_removes_the_passfile(env, pg_server, tmp_path, mode, signum):  # noqa: F811
    """kill -TERM/-HUP (and -INT for --command) of a running db.connect: psql is stopped
    and waited for, the passfile is removed, the exit code is 128 + the signal number."""
    runtime = tmp_path / "run"  # the passfile goes to $XDG_RUNTIME_DIR/releng-db-*/
    runtime.mkdir(mode=0o700)
    full_env = dict(
        env,
        XDG_RUNTIME_DIR=str(runtime),
        INVOKE_DB_HOST=pg_server.host,
        INVOKE_DB_PORT=str(pg_server.port),
        INVOKE_DB_PASSWORD=pg_server.password,
    )
    sql = "select pg_sleep(30) as signal_test"
    if mode == "command":
        proc = _start_invoke(full_env, "db.connect", "--command", sql, stdin=subprocess.DEVNULL)
    else:
        proc = _start_invoke(full_env, "db.connect", stdin=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(sql + ";\n")
        proc.stdin.flush()
    try:
        psql = _running_psql(proc.pid, time.monotonic() + 60, proc, interactive=mode != "command")
        passfiles = list(runtime.glob("releng-db-*/pgpass"))
        os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pg_server.psql(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where query like '%signal_test%' and pid <> pg_backend_pid()"
        )
    assert len(passfiles) == 1  # it was there while psql ran
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    assert list(runtime.iterdir()) == []  # passfile and its directory removed
    stat = _stat(psql)
    assert stat is None or stat[1] != proc.pid, "psql outlived db.connect"
    assert "Traceback" not in err
    assert pg_server.password not in out + err


def test_passfile_is_private_and_removed(tmp_path):
    with devdb.passfile_environment("s3:cr\\et") as child_env:
        path = Path(child_env["PGPASSFILE"])
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert path.read_text() == "*:*:*:*:s3\\:cr\\\\et\n"
        assert "PGPASSWORD" not in child_env
    assert not path.exists() and not path.parent.exists()


def test_password_with_special_characters_works(invoke, pg_server, tmp_path):  # noqa: F811
    tricky = "p:a\\ss wo'rd@/?"
    escaped = tricky.replace("'", "''")
    pg_server.psql(f"CREATE ROLE tricky LOGIN PASSWORD '{escaped}'")
    try:
        cfg = tmp_path / "tricky.yaml"
        cfg.write_text(
            "db:\n"
            f"  host: {pg_server.host}\n  port: {pg_server.port}\n  user: tricky\n"
            f"  database: {pg_server.database}\n"
            '  password: "p:a\\\\ss wo\'rd@/?"\n'
        )
        result = invoke("-f", str(cfg), "db.connect", "--raw", "--command", "select current_user")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "tricky\n"
        url = invoke("-f", str(cfg), "db.url", "--show-password")
        assert url.stdout.strip() == (
            f"postgresql://tricky:p%3Aa%5Css%20wo%27rd%40%2F%3F@{pg_server.host}:"
            f"{pg_server.port}/breakpad"
        )
    finally:
        pg_server.psql("DROP ROLE tricky")


def test_url_masks_the_password_by_default(invoke):
    result = invoke("db.url")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "postgresql://postgres:****@localhost:8574/breakpad\n"
    assert "aPassword" not in result.stdout + result.stderr


def test_url_show_password_and_flags(invoke):
    result = invoke(
        "db.url", "--show-password", "--host", "db.example", "--port", "5432", "--database", "x"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "postgresql://postgres:aPassword@db.example:5432/x\n"


def test_url_from_environment_override(invoke):
    result = invoke("db.url", extra_env={"INVOKE_DB_PASSWORD": "from-env", "INVOKE_DB_PORT": "9"})
    assert result.stdout == "postgresql://postgres:****@localhost:9/breakpad\n"
    assert "from-env" not in result.stdout


def test_bad_inputs_are_one_line_errors(invoke):
    for args, message in [
        (["db.connect", "--port", "abc", "--command", "select 1"], "port must be a number"),
        (["db.connect", "--client", "mysql"], "unknown --client 'mysql'"),
        (["db.connect", "--client", "pgcli", "--command", "select 1"], "--command runs through"),
        (["db.connect", "--command", "  "], "--command is empty"),
        (["db.connect", "--raw"], "--raw only applies to --command"),
        (["db.connect", "--host", "-x", "--command", "select 1"], "must not start with '-'"),
        (["db.url", "--port", "70000"], "port must be a number"),
        (
            ["db.connect", "-c", "select 1"],
            'no -c flag (Invoke would take it as its own); use --command "SQL"',
        ),
    ]:
        result = invoke(*args)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_dry_run_prints_the_command_without_password(invoke):
    result = invoke("--dry", "db.connect", "--command", "select 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("would run: psql -h localhost -p 8574 -U postgres -d breakpad")
    assert "aPassword" not in result.stdout


def test_classify_connection_errors():
    settings = devdb.make_settings("localhost", 8574, "postgres", "pw", "breakpad")
    fatal = 'psql: error: connection to server at "127.0.0.1", port 8574 failed: FATAL:  '
    assert devdb.classify_connection_error(
        fatal + 'password authentication failed for user "postgres"', settings
    ).startswith("wrong password")
    assert devdb.classify_connection_error(
        fatal + 'database "x" does not exist', settings
    ).startswith("database x does not exist on localhost:8574")
    assert devdb.classify_connection_error(
        'psql: error: connection to server at "localhost" (::1), port 8574 failed: '
        "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
        "connections?",
        settings,
    ).startswith("nothing listens on localhost:8574")
    assert devdb.classify_connection_error('ERROR:  relation "t" does not exist', settings) is None


def test_interactive_on_a_terminal_ctrl_c_cancels_the_query_not_the_task(env, pg_server):  # noqa: F811
    """psql attached to a real terminal (a pty): Ctrl-C cancels the running query, the
    session goes on, \\q ends it with exit 0; the password never appears on the screen."""
    import pty
    import select

    child_env = dict(
        env,
        INVOKE_DB_HOST=pg_server.host,
        INVOKE_DB_PORT=str(pg_server.port),
        INVOKE_DB_PASSWORD=pg_server.password,
        PSQL_PAGER="cat",
        PAGER="cat",
        TERM="dumb",
    )
    argv = [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), "db.connect"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes invoke on the pty
        try:
            os.chdir(PROJECT_ROOT)
            os.execve(sys.executable, argv, child_env)
        finally:
            os._exit(127)
    screen = b""

    def read_until(marker: bytes, seconds: float) -> None:
        nonlocal screen
        deadline = time.monotonic() + seconds
        while marker not in screen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(fd, 4096)
                except OSError:
                    return

    status = None
    try:
        read_until(b"breakpad=#", 30)
        os.write(fd, b"select pg_sleep(20);\n")
        time.sleep(1)
        os.write(fd, b"\x03")  # Ctrl-C, delivered by the terminal to the foreground group
        read_until(b"canceling statement due to user request", 15)
        os.write(fd, b"select 6 * 7 as answer;\n")
        read_until(b"(1 row)", 15)
        os.write(fd, b"\\q\n")
        deadline = time.monotonic() + 15
        while status is None and time.monotonic() < deadline:
            read_until(b"\0never", 0.2)
            done, raw = os.waitpid(pid, os.WNOHANG)
            status = os.waitstatus_to_exitcode(raw) if done else None
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = screen.decode(errors="replace")
    assert "canceling statement due to user request" in text, text
    assert "42" in text.split("answer", 1)[1], text
    assert status == 0, text
    assert pg_server.password not in text


def test_debug_logging_never_shows_secrets(invoke, pg_server, tmp_path):  # noqa: F811
    """`invoke --debug` logs every config source Invoke loads; the secrets in them (the
    INVOKE_DB_PASSWORD override, api keys and tokens in a config file) are masked."""
    tricky = "aP@ss:w\\rd"
    pg_server.psql(f"CREATE ROLE debug_user LOGIN PASSWORD '{tricky}'")
    try:
        cfg = _config(tmp_path, pg_server, user="debug_user")
        # The runtime file would beat the environment: the password comes from the latter.
        cfg.write_text(cfg.read_text().replace(f"  password: {pg_server.password!r}\n", ""))
        with cfg.open("a") as handle:
            handle.write(
                'bugzilla:\n  api_key: bz-Secret-2\ncrashstats:\n  api_token: "cs\'Secret-3"\n'
                "signing:\n  private_key: file-Secret-1\n"
            )
        result = invoke(
            "--debug",
            "-f",
            str(cfg),
            "db.connect",
            "--raw",
            "--command",
            "select current_user",
            extra_env={"INVOKE_DB_PASSWORD": tricky},
        )
    finally:
        pg_server.psql("DROP ROLE debug_user")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "debug_user\n"  # the override really reached psql
    log = result.stderr
    assert "invoke.env.load: Obtained env var config: {'db': {'password': '****'}}" in log
    assert "'api_key': '****'" in log and "'api_token': '****'" in log
    for secret in (tricky, repr(tricky)[1:-1], "file-Secret-1", "bz-Secret-2", "Secret-3"):
        assert secret not in log + result.stdout, secret
    assert "'user': 'debug_user'" in log  # only the secrets are masked


def test_invoke_debug_environment_variable_is_masked_too(invoke):
    result = invoke(
        "db.url", extra_env={"INVOKE_DEBUG": "1", "INVOKE_DB_PASSWORD": 'it\'s "quoted"'}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Obtained env var config: {'db': {'password': '****'}}" in result.stderr
    assert "quoted" not in result.stderr + result.stdout


def test_redaction_of_reprs_and_literal_values():
    from lib.redaction import redact

    text = (
        "{'db': {'password': 'a\\\\b', 'user': 'postgres'}, 'sudo': {'password': None}, "
        "'bugzilla': {'api_key': \"it's\", 'API-Token': 12345}, 'x': {'secret_file': b'k'}, "
        "'show-password': <Argument: show_password (s) [bool]>}"
    )
    assert redact(text) == (
        "{'db': {'password': '****', 'user': 'postgres'}, 'sudo': {'password': None}, "
        "'bugzilla': {'api_key': '****', 'API-Token': '****'}, 'x': {'secret_file': '****'}, "
        "'show-password': <Argument: show_password (s) [bool]>}"
    )
    assert redact("argv: ['--pw', 'hunter2\\\\x']", ["hunter2\\x"]) == "argv: ['--pw', '****']"


def test_long_flags_only_with_their_help_texts(invoke):
    """No automatic short flags (-h, -p, -d clash with Invoke's own --help, --pty, --debug)."""
    for task, flags in [
        ("db.connect", ["client", "command", "database", "host", "port", "raw", "user"]),
        ("db.url", ["database", "host", "port", "show-password", "user"]),
    ]:
        result = invoke("--help", task)
        assert result.returncode == 0, result.stderr
        options = result.stdout.split("Options:", 1)[1]
        for flag in flags:
            assert f"  --{flag}" in options, (task, flag)
        assert not re.search(r"^  -\w", options, re.MULTILINE), options  # no `-h STRING, --`
        assert "(default: config db." in options or "psql's exit code" in options
    result = invoke("db.connect", "-h", "localhost", "--command", "select 1")
    assert result.returncode != 0
    assert "needed value" not in result.stdout + result.stderr
