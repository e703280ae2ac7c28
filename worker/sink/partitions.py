"""Daily partitions of the telemetry tables: made before a load needs them,
dropped once past retention.

Every function here runs its own short transaction (call it on a connection
with no transaction open), serialized across workers of the same schema by
a transaction-level advisory lock, and tolerant of a partition that another
process created or dropped first.

NOTE: creating and dropping a partition lock the parent tables, so either
waits for the batches in flight (each holds its tables for the length of
one load, about a second for 10,000 readings) and holds new ones back
meanwhile. That is why partitions are made days ahead and dropped by a
periodic job rather than inside the load.
"""

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

import psycopg

from schema.ddl import (
    PARTITIONED_TABLES,
    create_partition_sql,
    partition_day,
    partition_name,
)

log = logging.getLogger(__name__)

# First key of the advisory lock that serializes partition DDL; the second is
# a hash of the schema name, so workers of different schemas never wait on
# each other. The value only has to be one no other code in the database
# uses as a first key.
PARTITION_LOCK_CLASS = 0x56454E50  # "VENP"

_LOCK_SQL = (
    "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))"
)


def utc_day(moment: datetime) -> date:
    """The day whose partition holds ``moment``."""
    return moment.astimezone(timezone.utc).date()


def create_partitions(conn: psycopg.Connection, days: Iterable[date]) -> None:
    """Make both tables' partitions for ``days`` (existing ones are kept)."""
    days = sorted(set(days))
    if not days:
        return
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK_SQL, (PARTITION_LOCK_CLASS,))
        for day in days:
            for parent in PARTITIONED_TABLES:
                cur.execute(create_partition_sql(parent, day))
    log.debug("partitions ready for %s .. %s", days[0], days[-1])


def ensure_partitions(
    conn: psycopg.Connection, today: date, ahead_days: int
) -> list[date]:
    """Make partitions for today and the ``ahead_days`` days after it, so a
    reading near midnight never waits on DDL. Returns the days covered."""
    days = [today + timedelta(days=n) for n in range(ahead_days + 1)]
    create_partitions(conn, days)
    return days


def existing_days(cur: psycopg.Cursor, parent: str) -> set[date]:
    """Days that have a partition of ``parent`` in the current schema."""
    cur.execute(
        "SELECT c.relname FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        (parent,),
    )
    days = (partition_day(parent, name) for (name,) in cur.fetchall())
    return {day for day in days if day is not None}


def missing_days(cur: psycopg.Cursor, days: Iterable[date]) -> set[date]:
    """Those of ``days`` that lack a partition in either table."""
    wanted = set(days)
    missing = set()
    for parent in PARTITIONED_TABLES:
        missing |= wanted - existing_days(cur, parent)
    return missing


def drop_expired_partitions(
    conn: psycopg.Connection, today: date, retention_days: int
) -> list[date]:
    """Drop both tables' partitions for days more than ``retention_days``
    before ``today`` (a day exactly that old is kept). 0 keeps everything.
    Returns the days dropped."""
    if retention_days <= 0:
        return []
    cutoff = today - timedelta(days=retention_days)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK_SQL, (PARTITION_LOCK_CLASS,))
        expired = set()
        for parent in PARTITIONED_TABLES:
            expired |= {d for d in existing_days(cur, parent) if d < cutoff}
        for day in sorted(expired):
            for parent in PARTITIONED_TABLES:
                # The name is made from the date again, never taken from the
                # catalog text.
                cur.execute(
                    f'DROP TABLE IF EXISTS "{partition_name(parent, day)}"'
                )
    if expired:
        log.info(
            "dropped partitions of %d expired days (%s .. %s), retention %d "
            "days", len(expired), min(expired), max(expired), retention_days
        )
    return sorted(expired)


class PartitionCache:
    """Days known to have partitions, so a batch pays for a catalog check
    or DDL only on a day it has not seen before."""

    def __init__(self) -> None:
        self._known: set[date] = set()

    def ensure(self, conn: psycopg.Connection, days: Iterable[date]) -> None:
        new = set(days) - self._known
        if new:
            create_partitions(conn, new)
            self._known |= new

    def add(self, days: Iterable[date]) -> None:
        self._known.update(days)

    def forget(self, days: Iterable[date]) -> None:
        self._known.difference_update(days)
