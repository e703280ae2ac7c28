"""Store readings decoded again from ``ingest_rejects`` rows of one shard,
and retire those rows, in one transaction.

A reject leaves the table only in the transaction that stores its reading
or finds it already stored, and the shard's counters on its lease row move
with it (from rejected to stored or duplicates), so sent = stored +
duplicates + rejected keeps balancing. Locks are taken in the order a
worker's batch takes them: the lease row first, then the readings' keys in
order, then ``ven_last_seen``; one shard per transaction keeps it to one
lease row at a time. Should a deadlock happen anyway, the transaction is
tried once more.
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
from worker.sink.rows import drop_repeats, unstorable_key

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
    they came from; the fate of each reject id. ``conn`` must have no
    transaction open.

    Rejects with the same (ven_id, timestamp) are tried one per
    transaction: a repeat is a duplicate once its twin is stored, and gets
    a transaction of its own when PostgreSQL refused the twin. Trying it in
    the same transaction would take its key out of order, which a worker
    storing the same readings could deadlock with.
    """
    fates, pending = {}, []
    for item in items:
        if unstorable_key(item.reading) is None:
            pending.append(item)
        else:
            fates[item.reject_id] = Fate.REFUSED
    while pending:
        settled, pending = _one_round_retried(conn, stream, shard_id,
                                              pending, partitions)
        fates.update(settled)
    return fates


def _one_round_retried(conn, stream: str, shard_id: str,
                       items: list[Redriven], partitions: PartitionCache):
    """``_one_round``, once more after a deadlock or a partition that
    retention dropped meanwhile; both roll the whole transaction back."""
    try:
        return _one_round(conn, stream, shard_id, items, partitions)
    except TransactionRollback:
        pass
    except PartitionsMissing as exc:
        partitions.forget(exc.days)
    return _one_round(conn, stream, shard_id, items, partitions)


def _one_round(conn, stream: str, shard_id: str, items: list[Redriven],
               partitions: PartitionCache):
    """One transaction: the fates it settled, and the repeats of refused
    readings left for the next one."""
    # DDL in its own short transaction, as the sink does.
    partitions.ensure(conn, {utc_day(i.reading.timestamp) for i in items})
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LOCK_LEASE_SQL, (stream, shard_id))
        has_lease_row = cur.rowcount > 0
        cur.execute(_LOCK_REJECTS_SQL, ([i.reject_id for i in items],))
        locked = {reject_id for (reject_id,) in cur.fetchall()}
        fates = {i.reject_id: Fate.TAKEN for i in items
                 if i.reject_id not in locked}
        settled, later = _load(cur, [i for i in items
                                     if i.reject_id in locked])
        fates.update(settled)

        retired = [i.reject_id for i in items
                   if fates.get(i.reject_id) in RETIRED]
        if retired:
            cur.execute(_DELETE_REJECTS_SQL, (retired,))
            _move_counters(cur, stream, shard_id, has_lease_row,
                           collections.Counter(fates[r] for r in retired))
    return fates, later


def _load(cur, items: list[Redriven]) -> tuple[dict[int, Fate], list]:
    """Load the readings of ``items``, one per (ven_id, timestamp): the
    fates settled, and the repeats whose twin PostgreSQL refused.

    Readings are matched back to their reject by identity: each Redriven
    holds its own Reading, and a refusal carries that reading's meta.
    """
    kept, _ = drop_repeats([item.reading for item in items])
    outcome = load_readings(cur, kept, probe_first=True)
    touch_last_seen(cur, outcome.stored)
    stored = {id(reading) for reading in outcome.stored}
    refused = {id(reject.meta) for reject in outcome.refused}

    kept_ids = {id(reading) for reading in kept}
    fates, refused_keys = {}, set()
    for item in items:
        reading = item.reading
        if id(reading) not in kept_ids:
            continue
        if id(reading) in stored:
            fates[item.reject_id] = Fate.STORED
        elif id(reading.meta) in refused:
            fates[item.reject_id] = Fate.REFUSED
            refused_keys.add(_key(reading))
        else:
            fates[item.reject_id] = Fate.DUPLICATE  # stored before

    later = []
    for item in items:
        if id(item.reading) in kept_ids:
            continue
        if _key(item.reading) in refused_keys:
            later.append(item)
        else:
            fates[item.reject_id] = Fate.DUPLICATE
    return fates, later


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


def _key(reading: Reading) -> tuple:
    return reading.ven_id, reading.timestamp
