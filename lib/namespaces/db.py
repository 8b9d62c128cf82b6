"""The local dev PostgreSQL database: open psql on it, print its URL."""

from invoke import task
from invoke.exceptions import Exit

from lib.console import refuse_core_short_flags
from lib.errors import UserError
from lib.settings import is_dry, setting

_CONNECTION_HELP = {
    "host": "database host (default: config db.host, localhost)",
    "port": "database port (default: config db.port, 8574)",
    "user": "database user (default: config db.user, postgres)",
    "database": "database name (default: config db.database, breakpad)",
}


def _settings(c, host, port, user, database_name):
    from lib import database as devdb  # imported here: `invoke --list` stays fast

    return devdb.make_settings(
        host=host if host is not None else setting(c, "db.host"),
        port=port if port is not None else setting(c, "db.port"),
        user=user if user is not None else setting(c, "db.user"),
        password=setting(c, "db.password"),
        database=database_name if database_name is not None else setting(c, "db.database"),
    )


@task(
    auto_shortflags=False,
    help={
        **_CONNECTION_HELP,
        "command": "run this one SQL command without a prompt and exit with psql's exit code",
        "client": "interactive client: psql (default) or pgcli",
        "raw": "with --command: bare rows for scripts (unaligned, no headers or row count)",
    },
)
def connect(
    c, host=None, port=None, user=None, database=None, command=None, client="psql", raw=False
):
    """Open psql (or pgcli) on the dev database; --command SQL runs one command and exits.

    The password comes from db.password and reaches the client through a temporary
    passfile, never through its arguments. Checks first that something listens on the port.
    """
    from lib import database as devdb

    refuse_core_short_flags("db.connect", {"-c": '--command "SQL"'})
    settings = _settings(c, host, port, user, database)
    client = (client or "psql").strip()
    if client not in devdb.CLIENT_INSTALL_HINTS:
        raise UserError(f"unknown --client {client!r}; use psql or pgcli")
    if command is not None and client != "psql":
        raise UserError("--command runs through psql; drop --client pgcli")
    if command is not None and not str(command).strip():
        raise UserError("--command is empty")
    if raw and command is None:
        raise UserError("--raw only applies to --command")
    if is_dry(c):
        print(devdb.describe(settings, client, command))
        return
    if command is not None:
        code = devdb.run_command(settings, command, raw=raw)
    else:
        code = devdb.run_interactive(settings, client=client)
    if code:
        raise Exit(code=code)


@task(
    auto_shortflags=False,
    help={
        **_CONNECTION_HELP,
        "show_password": "print the real password instead of ****",
    },
)
def url(c, host=None, port=None, user=None, database=None, show_password=False):
    """Print the dev database's connection URL, password masked (--show-password reveals)."""
    from lib import database as devdb

    settings = _settings(c, host, port, user, database)
    print(devdb.connection_url(settings, show_password=show_password))
