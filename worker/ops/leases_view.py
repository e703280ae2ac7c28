"""What the database says about a stream, for ``status``: read-only queries.

Every time is computed against the database's ``now()``, the clock leases
already use, so an operator's laptop clock does not skew ages.
"""

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from worker.db.connect import mask_url
from worker.errors import ConfigError

_LEASES_SQL = """
SELECT shard_id, parent_shard_ids, starting_hash_key, ending_hash_key,
       owner, lease_counter,
       extract(epoch FROM lease_expires_at - now())::float8
           AS lease_expires_in_s,
       checkpoint_sequence, reset_to_timestamp, records_stored,
       duplicates_dropped, records_rejected, millis_behind_latest,
       last_commit_at
FROM shard_leases
WHERE stream_name = %s
ORDER BY shard_id
"""

_WORKERS_SQL = """
SELECT worker_id, shard_selector,
       extract(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_age_s
FROM ingest_workers
WHERE stream_name = %s
ORDER BY worker_id
"""

# Each VEN's newest reading is found by primary key from ven_last_seen and
# credited to the shard that delivered it. Measured by
# bench/bench_status_newest.py on 200,000 readings over 21 days (three runs
# on a shared 2-core machine): 33-104x faster than max() per shard and
# 2.5-5x faster than a scan bounded to the newest day. Its cost follows the
# fleet's size, not the history's length. No index was added for it.
# LIMIT 1 keeps the planner probing per VEN (run-time partition pruning sends
# each probe to one partition) instead of hashing the whole table.
#
# NOTE: a shard's newest reading is found only when it is some VEN's newest.
# With partition key ${venId} (or a constant) each VEN stays on one shard and
# the answer is exact; with ${newuuid()} it is each shard's newest among the
# VENs whose latest reading landed there, within a reporting interval of the
# truth. A closed parent whose VENs moved on to its children shows none.
# ven_telemetry has no stream column, so two streams sharing a schema would
# share these figures.
_NEWEST_BY_SHARD_SQL = """
SELECT t.shard_id, max(t."timestamp") AS newest, count(*) AS vens
FROM ven_last_seen s
CROSS JOIN LATERAL (
    SELECT shard_id, "timestamp" FROM ven_telemetry
    WHERE ven_id = s.ven_id AND "timestamp" = s.last_reading_at
    LIMIT 1) t
WHERE t.shard_id = ANY(%s)
GROUP BY t.shard_id
"""


@dataclass(slots=True)
class Snapshot:
    now: datetime
    leases: list[dict]
    workers: list[dict]
    # shard_id -> (newest reading time, VENs whose newest reading it holds)
    newest_by_shard: dict[str, tuple[datetime, int]]
    newest_overall: datetime | None


def check_tables(conn: psycopg.Connection, url: str, schema: str) -> None:
    """One clear line when the worker's tables are not there."""
    found = conn.execute(
        "SELECT to_regclass('shard_leases') IS NOT NULL").fetchone()[0]
    if not found:
        raise ConfigError(
            f"the worker's tables are missing in schema {schema!r} of "
            f"{mask_url(url)}: run `ven-worker migrate` first")


def read_snapshot(conn: psycopg.Connection, stream: str) -> Snapshot:
    """Lease rows, workers and newest readings, read in one transaction so
    they describe the same moment."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        now = cur.execute("SELECT now() AS now").fetchone()["now"]
        leases = cur.execute(_LEASES_SQL, (stream,)).fetchall()
        workers = cur.execute(_WORKERS_SQL, (stream,)).fetchall()
        shard_ids = [row["shard_id"] for row in leases]
        newest = {
            row["shard_id"]: (row["newest"], row["vens"])
            for row in cur.execute(_NEWEST_BY_SHARD_SQL, (shard_ids,))
        }
        overall = cur.execute(
            "SELECT max(last_reading_at) AS newest FROM ven_last_seen"
        ).fetchone()["newest"]
    for row in leases:
        row["parent_shard_ids"] = list(row["parent_shard_ids"] or ())
    return Snapshot(now, leases, workers, newest, overall)
