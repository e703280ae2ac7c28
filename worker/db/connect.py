"""Opening connections: the configured database and schema, UTC sessions, and
URLs that are safe to print."""

import re
from urllib.parse import urlsplit, urlunsplit

import psycopg

from worker.errors import ConfigError, TransientError

# Errors after which the same work may well succeed: a lost or refused
# connection, a timeout, a failover, a deadlock. psycopg files two of them
# under InternalError (class 25), so they are listed by name.
TRANSIENT_DB_ERRORS = (
    psycopg.OperationalError,
    psycopg.errors.IdleInTransactionSessionTimeout,
    psycopg.errors.ReadOnlySqlTransaction,
    TransientError,
)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# How long to wait for a server before calling it unreachable. Long enough for
# a busy server, short enough that a wrong URL fails start-up promptly.
CONNECT_TIMEOUT_S = 5


def check_schema_name(schema: str) -> str:
    """Schema names are spliced into DDL, so only plain lower-case identifiers
    are accepted."""
    if not _IDENTIFIER.match(schema):
        raise ConfigError(
            f"PG_SCHEMA {schema!r} is not a plain identifier "
            "(lower-case letters, digits and _, not starting with a digit)"
        )
    return schema


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def lease_row_session(lease_duration_s: float) -> dict[str, int]:
    """Server limits for a session whose transactions lock lease rows.

    Such a transaction that stalls (a paused or stuck process) would keep
    every worker off the shard. The server ends it: idle in the transaction
    for a lease duration, or one statement (a COPY waiting for data counts
    as busy, not idle) running for three. Lock waits (partition DDL, a lease
    row) give up after one lease duration instead of queueing the fleet
    behind a stalled session.
    """
    lease_ms = int(lease_duration_s * 1000)
    return {"idle_in_transaction_session_timeout": lease_ms,
            "statement_timeout": 3 * lease_ms,
            "lock_timeout": lease_ms}


# TCP keepalives: a server or network that vanished without closing the
# socket is noticed in about 25 s (10 s idle, then 3 probes 5 s apart)
# instead of the kernel's two hours, so a reader never hangs on a dead link.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10,
              "keepalives_interval": 5, "keepalives_count": 3}


def connection_options(schema: str, settings: dict | None = None) -> str:
    # Every session works in UTC and in the worker's schema, whatever the
    # server's or role's defaults are.
    options = f"-c search_path={check_schema_name(schema)} -c timezone=UTC"
    for name, value in (settings or {}).items():
        options += f" -c {name}={int(value)}"
    return options


# Shown in pg_stat_activity, so an operator can tell the worker's sessions
# (and which worker they belong to) from everyone else's.
APPLICATION_NAME = "ven-worker"


def connect(url: str, schema: str = "public",
            application_name: str = APPLICATION_NAME,
            session: dict | None = None,
            **kwargs) -> psycopg.Connection:
    """Open one connection, or raise ConfigError with one clear line.

    ``session`` adds integer server settings for this session only (names
    come from code, never from input).
    """
    try:
        return psycopg.connect(
            url,
            options=connection_options(schema, session),
            connect_timeout=CONNECT_TIMEOUT_S,
            **KEEPALIVES,
            # pg_stat_activity keeps 63 bytes of it.
            application_name=application_name[:63],
            **kwargs,
        )
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc) else ""
        raise ConfigError(
            f"cannot connect to PostgreSQL at {mask_url(url)}: {first_line} "
            "(set DATABASE_URL to a reachable server, or unset it to use the "
            "embedded one)"
        ) from exc
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"DATABASE_URL {mask_url(url)} is not a valid PostgreSQL URL: {exc}"
        ) from exc


def ensure_schema(conn: psycopg.Connection, schema: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f'CREATE SCHEMA IF NOT EXISTS "{check_schema_name(schema)}"'
        )
