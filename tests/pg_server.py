"""A real PostgreSQL 15 server for the tests: initdb + pg_ctl in a temporary directory.

The server listens on 127.0.0.1 on a free port, has a `postgres` role with a password and
scram-sha-256 authentication for every TCP connection (local socket: trust, for the fixture's
own setup). PostgreSQL refuses to run as root, so when the tests run as root (CI) initdb and
pg_ctl run as the `postgres` system user through runuser, in a directory that user owns.

Use the `pg_server` fixture (session-scoped: one server for the whole run, stopped at the end).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("RELENG_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    base: Path
    socket_dir: Path

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run SQL as the superuser over the Unix socket (trust); returns stdout."""
        result = subprocess.run(
            [
                shutil.which("psql") or str(PG_BIN / "psql"),
                "-X",
                "-At",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database or "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    """Prefix a command so it runs as `postgres` when we are root."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", SERVER_USER, "--", *argv]
    entry = pwd.getpwnam(SERVER_USER)
    return [
        shutil.which("setpriv") or "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--init-groups",
        *argv,
    ]


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return subprocess.run(
        _as_server_user(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd="/",
        stdin=subprocess.DEVNULL,
    )


def _make_base_dir() -> Path:
    """A temp dir the server user can use (made theirs when we are root)."""
    base = Path(tempfile.mkdtemp(prefix="releng-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        # The server user must be able to reach it: the temp root may be private to root.
        probe = _run(["test", "-w", str(base)])
        if probe.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            base = Path(tempfile.mkdtemp(prefix="releng-pg-", dir="/tmp"))
            os.chown(base, entry.pw_uid, entry.pw_gid)
    return base


def start_server(password: str | None = None, database: str = "breakpad") -> PostgresServer:
    """initdb, start on a free port, create `database`; raises RuntimeError with the log."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(
            f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing); .ci/run installs it"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
    password = password or "pw-" + secrets.token_urlsafe(12)
    base = _make_base_dir()
    data = base / "data"
    socket_dir = base / "sock"
    pwfile = base / "pwfile"
    try:
        made = _run(["mkdir", "-m", "0700", str(socket_dir)])
        if made.returncode != 0:
            raise RuntimeError(made.stderr)
        # Write the password file as the server user (the file must be readable by initdb).
        write = subprocess.run(
            _as_server_user(["sh", "-c", 'umask 077 && cat > "$0"', str(pwfile)]),
            input=password + "\n",
            text=True,
            capture_output=True,
            timeout=30,
        )
        if write.returncode != 0:
            raise RuntimeError(write.stderr)
        init = _run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                SERVER_USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        pwfile.unlink(missing_ok=True)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stdout}\n{init.stderr}")
        last_error = ""
        for _attempt in range(3):  # the free port can be taken between probe and start
            port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c password_encryption=scram-sha-256"
            )
            start = _run(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(base / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
            if start.returncode == 0:
                break
            last_error = start.stderr + _read_log(base)
        else:
            raise RuntimeError(f"pg_ctl start failed: {last_error}")
        server = PostgresServer(
            host="127.0.0.1",
            port=port,
            user=SERVER_USER,
            password=password,
            database=database,
            base=base,
            socket_dir=socket_dir,
        )
        server.psql(f'CREATE DATABASE "{database}"')
        return server
    except BaseException:
        stop_server_at(base)
        raise


def _read_log(base: Path) -> str:
    try:
        return (base / "server.log").read_text()[-2000:]
    except OSError:
        return ""


def stop_server_at(base: Path) -> None:
    data = base / "data"
    if (data / "postmaster.pid").exists():
        _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], 60)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL 15 for the session; stopped and removed at the end."""
    server = start_server()
    try:
        yield server
    finally:
        stop_server_at(server.base)
