"""Store readings decoded again from ``ingest_rejects`` rows of one shard,
and retire those rows, in one transaction.

A reject leaves the table only in the transaction that stores its reading
or finds it already stored, and the shard's counters on its lease row move
with it (from rejected to stored or duplicates), so sent = stored +
duplicates + rejected keeps balancing. Locks are taken in the order a
worker's batch takes them: the lease row first, then the readings' keys in
order, then ``ven_last_seen``; one shard per transaction keeps it to one
lease row at a time. Should a deadlock happen anyway (see
``load_readings`` for when it can), the transaction is tried once more.
"""

import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import psycopg
from psycopg.errors import TransactionRollback

from worker.records.model import Reading
from worker.sink.last_seen import touch_last_seen
from worker.sink.load import PartitionsMissing, load_readings
from worker.sink.partitions import PartitionCache, utc_day
from worker.sink.rows import unstorable_key

log = logging.getLogger(__name__)

_LOCK_LEASE_SQL = """
SELECT 1 FROM shard_leases
WHERE stream_name = %s AND shard_id = %s
FOR UPDATE
"""

# Rows gone by now were retired by another redrive that held them first.
_LOCK_REJECTS_SQL = """
SELECT id FROM ingest_rejects
WHERE id = ANY(%s)
ORDER BY id
FOR UPDATE SKIP LOCKED
"""

_DELETE_REJECTS_SQL = "DELETE FROM ingest_rejects WHERE id = ANY(%s)"

# No floor at zero: the three counters must keep their sum, and a negative
# count of rejects shows that the counters had drifted before.
_MOVE_COUNTERS_SQL = """
UPDATE shard_leases
SET records_stored = records_stored + %(stored)s,
    duplicates_dropped = duplicates_dropped + %(duplicates)s,
    records_rejected = records_rejected - %(stored)s - %(duplicates)s
WHERE stream_name = %(stream)s AND shard_id = %(shard)s
"""


class Fate(str, Enum):
    """What became of one reject."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    # PostgreSQL still refuses the reading: the reject row stays.
    REFUSED = "refused"
    # Another redrive held the row, or had retired it already.
    TAKEN = "taken"


RETIRED = (Fate.STORED, Fate.DUPLICATE)


@dataclass(frozen=True, slots=True)
class Redriven:
    """A reject row whose record now decodes into ``reading``."""

    reject_id: int
    reading: Reading


def store_redriven(conn: psycopg.Connection, stream: str, shard_id: str,
                   items: Sequence[Redriven],
                   partitions: PartitionCache) -> dict[int, Fate]:
    """Store ``items`` (all from ``shard_id``) and delete the reject rows
    they came from, in one transaction; the fate of each reject id.
    ``conn`` must have no transaction open."""
    fates, storable = {}, []
    for item in items:
        if unstorable_key(item.reading) is None:
            storable.append(item)
        else:
            fates[item.reject_id] = Fate.REFUSED
    if storable:
        fates.update(_store_retried(conn, stream, shard_id, storable,
                                    partitions))
    return fates


def _store_retried(conn, stream: str, shard_id: str, items: list[Redriven],
                   partitions: PartitionCache) -> dict[int, Fate]:
    """``_store``, once more after a deadlock or a partition that retention
    dropped meanwhile; both roll the whole transaction back."""
    try:
        return _store(conn, stream, shard_id, items, partitions)
    except TransactionRollback:
        pass
    except PartitionsMissing as exc:
        partitions.forget(exc.days)
    return _store(conn, stream, shard_id, items, partitions)


def _store(conn, stream: str, shard_id: str, items: list[Redriven],
           partitions: PartitionCache) -> dict[int, Fate]:
    # DDL in its own short transaction, as the sink does.
    partitions.ensure(conn, {utc_day(i.reading.timestamp) for i in items})
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK_LEASE_SQL, (stream, shard_id))
        has_lease_row = cur.rowcount > 0
        cur.execute(_LOCK_REJECTS_SQL, ([i.reject_id for i in items],))
        locked = {reject_id for (reject_id,) in cur.fetchall()}
        fates = {i.reject_id: Fate.TAKEN for i in items
                 if i.reject_id not in locked}
        fates.update(_load(cur, [i for i in items
                                 if i.reject_id in locked]))

        retired = [i.reject_id for i in items
                   if fates[i.reject_id] in RETIRED]
        if retired:
            cur.execute(_DELETE_REJECTS_SQL, (retired,))
            _move_counters(cur, stream, shard_id, has_lease_row,
                           collections.Counter(fates[r] for r in retired))
    return fates


def _load(cur, items: list[Redriven]) -> dict[int, Fate]:
    """Load the readings of ``items``; the fate of each.

    Readings are matched back to their reject by identity: each Redriven
    holds its own Reading, and a refusal carries that reading's meta. A
    reading neither stored nor refused had its key stored already, by this
    load or before it.
    """
    outcome = load_readings(cur, [item.reading for item in items],
                            probe_first=True)
    touch_last_seen(cur, outcome.stored)
    stored = {id(reading) for reading in outcome.stored}
    refused = {id(reject.meta) for reject in outcome.refused}

    fates = {}
    for item in items:
        if id(item.reading) in stored:
            fates[item.reject_id] = Fate.STORED
        elif id(item.reading.meta) in refused:
            fates[item.reject_id] = Fate.REFUSED
        else:
            fates[item.reject_id] = Fate.DUPLICATE
    return fates


def _move_counters(cur, stream: str, shard_id: str, has_lease_row: bool,
                   moved: collections.Counter) -> None:
    if not has_lease_row:
        log.warning("stream %s shard %s has no lease row: %d redriven "
                    "rejects moved no counters", stream, shard_id,
                    sum(moved.values()))
        return
    cur.execute(_MOVE_COUNTERS_SQL, {
        "stored": moved[Fate.STORED], "duplicates": moved[Fate.DUPLICATE],
        "stream": stream, "shard": shard_id})
