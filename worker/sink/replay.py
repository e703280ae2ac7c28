"""Store readings decoded again from ``ingest_rejects`` rows, and retire
those rows, in one transaction.

A reject leaves the table only in the transaction that stores its reading
or finds it already stored, and the shard's counters on its lease row move
with it (from rejected to stored or duplicates), so sent = stored +
duplicates + rejected keeps balancing. Locks are taken in the order a
worker's batch takes them, lease row first and then the readings' keys, so
a replay never deadlocks with a running worker. Reject rows another replay
holds are skipped, not waited for: that replay is handling them.
"""

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import psycopg

from worker.records.model import Reading
from worker.sink.last_seen import touch_last_seen
from worker.sink.load import load_readings
from worker.sink.partitions import PartitionCache, utc_day
from worker.sink.rows import drop_repeats, unstorable_key

_LOCK_LEASES_SQL = """
SELECT shard_id FROM shard_leases
WHERE stream_name = %s AND shard_id = ANY(%s)
ORDER BY shard_id
FOR UPDATE
"""

_LOCK_REJECTS_SQL = """
SELECT id FROM ingest_rejects
WHERE id = ANY(%s)
ORDER BY id
FOR UPDATE SKIP LOCKED
"""

_DELETE_REJECTS_SQL = "DELETE FROM ingest_rejects WHERE id = ANY(%s)"

_MOVE_COUNTERS_SQL = """
UPDATE shard_leases
SET records_stored = records_stored + %(stored)s,
    duplicates_dropped = duplicates_dropped + %(duplicates)s,
    records_rejected = GREATEST(records_rejected - %(moved)s, 0)
WHERE stream_name = %(stream)s AND shard_id = %(shard)s
"""


class Fate(str, Enum):
    """What became of one replayed reject."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    # PostgreSQL still refuses the reading: the reject row stays.
    REFUSED = "refused"
    # Another replay holds the row: left to it.
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Replayed:
    """A reject row whose record now decodes into ``reading``."""

    reject_id: int
    shard_id: str
    reading: Reading


def store_replayed(conn: psycopg.Connection, stream: str,
                   items: Sequence[Replayed],
                   partitions: PartitionCache) -> dict[int, Fate]:
    """Store ``items`` and delete the reject rows they came from; the fate
    of each reject id. ``conn`` must have no transaction open."""
    fates, storable = {}, []
    for item in items:
        if unstorable_key(item.reading) is None:
            fates[item.reject_id] = Fate.SKIPPED  # until this replay locks it
            storable.append(item)
        else:
            fates[item.reject_id] = Fate.REFUSED
    if not storable:
        return fates
    # DDL in its own short transaction, as the sink does.
    partitions.ensure(conn, {utc_day(i.reading.timestamp) for i in storable})

    with conn.transaction(), conn.cursor() as cur:
        shards = sorted({item.shard_id for item in storable})
        cur.execute(_LOCK_LEASES_SQL, (stream, shards))
        cur.execute(_LOCK_REJECTS_SQL, ([i.reject_id for i in storable],))
        locked = {reject_id for (reject_id,) in cur.fetchall()}
        mine = [item for item in storable if item.reject_id in locked]
        if not mine:
            return fates

        # Readings are matched back to their reject by identity: each
        # Replayed holds its own Reading and RecordMeta objects.
        unique, _ = drop_repeats([item.reading for item in mine])
        outcome = load_readings(cur, unique, probe_first=True)
        touch_last_seen(cur, outcome.stored)

        stored = {id(reading) for reading in outcome.stored}
        refused = {id(reject.meta) for reject in outcome.refused}
        for item in mine:
            if id(item.reading) in stored:
                fates[item.reject_id] = Fate.STORED
            elif id(item.reading.meta) in refused:
                fates[item.reject_id] = Fate.REFUSED
            else:
                # Found stored, or a repeat of a reading in this page.
                fates[item.reject_id] = Fate.DUPLICATE

        retired = [item for item in mine
                   if fates[item.reject_id] in (Fate.STORED, Fate.DUPLICATE)]
        cur.execute(_DELETE_REJECTS_SQL,
                    ([item.reject_id for item in retired],))
        _move_counters(cur, stream, retired, fates)
    return fates


def _move_counters(cur, stream: str, retired: Sequence[Replayed],
                   fates: dict[int, Fate]) -> None:
    per_shard = collections.defaultdict(collections.Counter)
    for item in retired:
        per_shard[item.shard_id][fates[item.reject_id]] += 1
    for shard_id, counts in sorted(per_shard.items()):
        cur.execute(_MOVE_COUNTERS_SQL, {
            "stored": counts[Fate.STORED],
            "duplicates": counts[Fate.DUPLICATE],
            "moved": counts[Fate.STORED] + counts[Fate.DUPLICATE],
            "stream": stream, "shard": shard_id,
        })
