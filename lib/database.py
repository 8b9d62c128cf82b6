"""The local dev PostgreSQL: connection settings, URL, reachability, and running psql/pgcli.

The password reaches the client only through a temporary passfile (mode 0600, in a private
directory, removed when the client exits) named by PGPASSFILE; it is never put in process
arguments, in the client's environment, or in any output; nor are the other secrets of our
environment (API keys, tokens) passed on. Connection failures reported by
psql are turned into one clear line each (wrong password, missing database, unknown role,
nothing listening).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from invoke.exceptions import Exit

from lib.console import info
from lib.errors import UserError
from lib.redaction import child_environment

#: What the URL shows instead of the password.
MASK = "****"

#: Besides the secrets (lib.redaction: PGPASSWORD, INVOKE_DB_PASSWORD, API keys and tokens),
#: never handed to the client: a stale PGPASSFILE would stand in for ours.
_SCRUBBED_ENV = ("PGPASSFILE",)

#: How to start the service's dev database, for the "nothing listens" message.
START_HINT = (
    "start the dev environment's database in the service checkout with "
    "`docker compose up -d postgresql` (or `just run` / `make run`)"
)

CLIENT_INSTALL_HINTS = {
    "psql": "install the PostgreSQL client (apt-get install postgresql-client, "
    "brew install libpq) or put psql on PATH",
    "pgcli": "install it with `pip install pgcli` (or pipx install pgcli), or use the default "
    "client psql (drop --client)",
}


@dataclass(frozen=True)
class ConnectionSettings:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def where(self) -> str:
        """host:port, as people write it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


def parse_port(value: Any) -> int:
    """A TCP port from a flag or config value; anything else is a one-line UserError."""
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        raise UserError(f"port must be a number from 1 to 65535, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise UserError(f"port must be a number from 1 to 65535, got {value!r}")
    return port


def make_settings(
    host: Any, port: Any, user: Any, password: Any, database: Any
) -> ConnectionSettings:
    """Validate raw values (flags already merged over config) into ConnectionSettings."""
    values = {"host": host, "user": user, "database": database}
    for name, value in values.items():
        if value is None or str(value).strip() == "":
            raise UserError(f"the database {name} is empty; set db.{name} or pass --{name}")
        if str(value).startswith("-"):
            raise UserError(f"the database {name} must not start with '-' (got {value!r})")
        if any(ch in str(value) for ch in "\r\n\0"):
            raise UserError(f"the database {name} must be one line")
    pw = "" if password is None else str(password)
    if any(ch in pw for ch in "\r\n\0"):
        raise UserError("db.password must be one line")
    return ConnectionSettings(
        host=str(host).strip(),
        port=parse_port(port),
        user=str(user),
        password=pw,
        database=str(database),
    )


def connection_url(settings: ConnectionSettings, show_password: bool = False) -> str:
    """postgresql://user:****@host:port/database (the real password only when asked)."""
    auth = quote(settings.user, safe="")
    if settings.password:
        auth += ":" + (quote(settings.password, safe="") if show_password else MASK)
    if settings.host.startswith("/"):
        # A Unix-socket directory goes in the query string (libpq's URI form).
        return (
            f"postgresql://{auth}@/{quote(settings.database, safe='')}"
            f"?host={quote(settings.host, safe='')}&port={settings.port}"
        )
    return f"postgresql://{auth}@{settings.where}/{quote(settings.database, safe='')}"


def port_accepts_connections(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when something accepts a TCP connection on host:port (any resolved address).

    A host starting with "/" is a Unix-socket directory, as for libpq.
    """
    if host.startswith("/"):
        path = os.path.join(host, f".s.PGSQL.{port}")
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(path)
                return True
            except OSError:
                return False
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UserError(f"cannot resolve the database host {host!r}", code=2) from None
    for family, socktype, proto, _name, address in infos:
        with contextlib.closing(socket.socket(family, socktype, proto)) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(address)
                return True
            except OSError:
                continue
    return False


def require_listening(settings: ConnectionSettings) -> None:
    if not port_accepts_connections(settings.host, settings.port):
        raise UserError(f"nothing listens on {settings.where}; {START_HINT}", code=2)


def find_client(name: str) -> str:
    """The client executable's path; a clear line when it is not installed."""
    if name not in CLIENT_INSTALL_HINTS:
        raise UserError(f"unknown client {name!r}; use psql or pgcli")
    path = shutil.which(name)
    if not path:
        raise UserError(
            f"{name} is not installed (not found on PATH); {CLIENT_INSTALL_HINTS[name]}"
        )
    return path


def client_argv(
    client_path: str,
    client: str,
    settings: ConnectionSettings,
    command: str | None = None,
    raw: bool = False,
) -> list[str]:
    """The client's arguments: connection options only, never the password."""
    args = [client_path, "-h", settings.host, "-p", str(settings.port), "-U", settings.user]
    if client == "pgcli":
        return [*args, "-d", settings.database, "--no-password"]
    args += ["-d", settings.database, "--no-password"]
    if command is not None:
        # No ~/.psqlrc for scripted runs, stop at the first error.
        args += ["-X", "-v", "ON_ERROR_STOP=1"]
        if raw:
            args += ["--no-align", "--tuples-only"]
        args += ["-c", command]
    return args


def _escape_passfile_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextlib.contextmanager
def passfile_environment(password: str) -> Iterator[dict[str, str]]:
    """The client's environment: PGPASSFILE names a private 0600 file, removed afterwards."""
    env = child_environment(also_remove=_SCRUBBED_ENV)
    if not password:
        yield env
        return
    # Mode 0700; in the per-user runtime directory (a tmpfs) when there is one.
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    directory = tempfile.mkdtemp(
        prefix="releng-db-", dir=runtime if runtime and os.path.isdir(runtime) else None
    )
    path = os.path.join(directory, "pgpass")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            # Any host, port and database: the file lives only as long as this one client.
            handle.write(f"*:*:*:*:{_escape_passfile_field(password)}\n")
        env["PGPASSFILE"] = path
        yield env
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# psql's connection errors, most specific first: (pattern, message template).
_CONNECTION_ERRORS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"password authentication failed for user"),
        "wrong password for user {user} on {where} (or no such user); set db.password "
        "(e.g. INVOKE_DB_PASSWORD=... or your own config file)",
    ),
    (
        re.compile(r"no password supplied|password is required"),
        "the server at {where} wants a password for user {user} and none is configured; "
        "set db.password",
    ),
    (
        re.compile(r'database "(?P<name>[^"]*)" does not exist'),
        "database {name} does not exist on {where}; pass --database or set db.database "
        '(list them: invoke db.connect --database postgres --command "\\l")',
    ),
    (
        re.compile(r'role "(?P<name>[^"]*)" does not exist'),
        "user (role) {name} does not exist on {where}; pass --user or set db.user",
    ),
    (
        re.compile(r"Connection refused|could not connect to server|No such file or directory"),
        "nothing listens on {where}; " + START_HINT,
    ),
    (
        re.compile(r"(?:timeout expired|Connection timed out)"),
        "the database server at {where} does not answer (connection timed out)",
    ),
]


def classify_connection_error(stderr: str, settings: ConnectionSettings) -> str | None:
    """One clear line for a psql connection failure, or None when it is something else."""
    if "psql: error:" not in stderr and "FATAL:" not in stderr:
        return None
    for pattern, template in _CONNECTION_ERRORS:
        match = pattern.search(stderr)
        if match:
            name = match.groupdict().get("name") or ""
            return template.format(user=settings.user, where=settings.where, name=name)
    return None


#: Seconds a client has to exit after a forwarded signal before it gets SIGTERM, then SIGKILL.
CLIENT_GRACE_SECONDS = 5.0


class ClientSignals:
    """While a client (psql, pgcli) runs: its passfile must not outlive it, whatever ends us.

    The signals in `forward` (SIGTERM, SIGHUP; SIGINT for non-interactive runs) are passed on
    to the client; the client is waited for (SIGTERM, then SIGKILL, if it has not exited
    after CLIENT_GRACE_SECONDS each), the passfile is removed as the `with` blocks unwind,
    and `exit_if_signalled()` then exits with 128 + the signal number, as shells report a
    process ended by that signal. The signals in `ignore` (an interactive client's SIGINT and
    SIGQUIT, which the terminal delivers to the client too) leave us waiting.

    Enter it before the passfile is written and call exit_if_signalled() after it is gone.
    Python handlers (not SIG_IGN), so that the client, after exec, gets the default actions.
    """

    def __init__(self, forward: tuple[int, ...], ignore: tuple[int, ...] = ()) -> None:
        self.forward = forward
        self.ignore = ignore
        self.received: int | None = None
        self._client: subprocess.Popen[Any] | None = None
        self._previous: dict[int, Any] = {}
        self._timers: list[threading.Timer] = []

    def __enter__(self) -> ClientSignals:
        for signum in (*self.forward, *self.ignore):
            handler = self._on_signal if signum in self.forward else self._ignore
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue  # ignored by whoever started us (nohup, a background job): keep it so
            try:
                self._previous[signum] = signal.signal(signum, handler)
            except ValueError:  # not the main thread: nothing to install
                pass
        return self

    def __exit__(self, *exc_info: object) -> None:
        for timer in self._timers:
            timer.cancel()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        self._client = None

    @staticmethod
    def _ignore(signum: int, frame: Any) -> None:
        pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
        self._send(signum)

    def attach(self, client: subprocess.Popen[Any]) -> None:
        """The client just started; a signal that came before it is passed on now."""
        self._client = client
        if self.received is not None:
            self._send(self.received)

    def _send(self, signum: int) -> None:
        client = self._client
        if client is None or client.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            client.send_signal(signum)
        if not self._timers:  # the first forwarded signal starts the bounded wait
            self._escalate_later(signal.SIGTERM if signum != signal.SIGTERM else signal.SIGKILL)

    def _escalate_later(self, signum: int) -> None:
        def escalate() -> None:
            client = self._client
            if client is None or client.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                client.send_signal(signum)
            if signum != signal.SIGKILL:
                self._escalate_later(signal.SIGKILL)

        timer = threading.Timer(CLIENT_GRACE_SECONDS, escalate)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def exit_if_signalled(self) -> None:
        """Exit with 128 + the signal number if a forwarded signal came (silently: the
        terminal may be gone after SIGHUP)."""
        if self.received is not None:
            raise Exit(code=128 + self.received)


#: Signals that end a non-interactive client run (forwarded, then we exit).
_COMMAND_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def run_command(settings: ConnectionSettings, command: str, raw: bool = False) -> int:
    """Run one SQL command with psql non-interactively; returns psql's exit code.

    psql's output goes straight to our stdout; its stderr is relayed line by line, except a
    connection failure, which becomes one clear UserError line (with psql's exit code).
    SIGTERM, SIGHUP and SIGINT are passed on to psql (see ClientSignals).
    """
    psql = find_client("psql")
    require_listening(settings)
    argv = client_argv(psql, "psql", settings, command=command, raw=raw)
    held: list[str] = []
    code = 0
    with ClientSignals(forward=_COMMAND_SIGNALS, ignore=(signal.SIGQUIT,)) as signals:
        with passfile_environment(settings.password) as env:
            if signals.received is None:
                proc = subprocess.Popen(
                    argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                )
                signals.attach(proc)

                def relay() -> None:
                    assert proc.stderr is not None
                    for line in proc.stderr:
                        if held or line.startswith("psql: error:"):
                            held.append(line)  # a connection failure: classified below
                        else:
                            sys.stderr.write(line)
                            sys.stderr.flush()

                reader = threading.Thread(target=relay, daemon=True)
                reader.start()
                code = proc.wait()
                reader.join(timeout=5)
    signals.exit_if_signalled()
    if held:
        text = "".join(held)
        message = classify_connection_error(text, settings)
        if message:
            raise UserError(message, code=code or 2)
        sys.stderr.write(text)
    return code


def probe(psql: str, settings: ConnectionSettings, timeout: float = 30) -> None:
    """Connect once with `select 1` so that a connection failure gets its own clear line."""
    argv = client_argv(psql, "psql", settings, command="select 1", raw=True)
    returncode, stderr = 0, ""
    with ClientSignals(forward=_COMMAND_SIGNALS, ignore=(signal.SIGQUIT,)) as signals:
        with passfile_environment(settings.password) as env:
            if signals.received is None:
                proc = subprocess.Popen(
                    argv,
                    env={**env, "PGCONNECT_TIMEOUT": "10"},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                signals.attach(proc)
                try:
                    _out, stderr = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    raise UserError(
                        f"the database server at {settings.where} does not answer", code=2
                    ) from None
                returncode = proc.returncode
    signals.exit_if_signalled()
    if returncode != 0:
        message = classify_connection_error(stderr, settings)
        lines = stderr.strip().splitlines() or ["psql failed"]
        first = next((line for line in lines if line.startswith("psql: error:")), lines[0])
        raise UserError(message or first.removeprefix("psql: error: "), code=returncode)


def run_interactive(settings: ConnectionSettings, client: str = "psql") -> int:
    """Open the client attached to our terminal; returns its exit code.

    Ctrl-C and Ctrl-\\ belong to the client (psql cancels the query); we just wait.
    SIGTERM and SIGHUP are passed on to it (see ClientSignals).
    """
    client_path = find_client(client)
    psql = client_path if client == "psql" else shutil.which("psql")
    require_listening(settings)
    if psql:
        probe(psql, settings)
    argv = client_argv(client_path, client, settings)
    info(f"connecting to {connection_url(settings)} with {client}")
    code = 0
    with ClientSignals(
        forward=(signal.SIGTERM, signal.SIGHUP), ignore=(signal.SIGINT, signal.SIGQUIT)
    ) as signals:
        with passfile_environment(settings.password) as env:
            if signals.received is None:
                proc = subprocess.Popen(argv, env=env)
                signals.attach(proc)
                code = proc.wait()
    signals.exit_if_signalled()
    return code


def describe(settings: ConnectionSettings, client: str, command: str | None) -> str:
    """What would run, for --dry (no password: it goes through PGPASSFILE)."""
    argv = client_argv(client, client, settings, command=command)
    shown = " ".join(_shell_quote(arg) for arg in argv)
    suffix = " (password through a temporary PGPASSFILE)" if settings.password else ""
    return f"would run: {shown}{suffix}"


def _shell_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
