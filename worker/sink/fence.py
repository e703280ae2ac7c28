"""The lease row as the batch's fence and its ledger.

The batch transaction locks the row first, matching owner and lease counter,
and moves the checkpoint and the running totals on it last. A lease taken
by another worker changes the counter, so a batch read under the old
ownership finds no row and stores nothing.
"""

import psycopg

from worker.errors import LeaseLost
from worker.sink.batch import Batch, Checkpoint, LeaseToken

_LOCK_SQL = """
SELECT checkpoint_sequence, checkpoint_sub_sequence FROM shard_leases
WHERE stream_name = %s AND shard_id = %s AND owner = %s AND lease_counter = %s
FOR UPDATE
"""

# millis_behind_latest is kept when the batch does not know it. An operator's
# reset position has done its job once a batch read from it commits: from
# then on the checkpoint says where to resume.
_MOVE_SQL = """
UPDATE shard_leases SET
    reset_to_timestamp = NULL,
    checkpoint_sequence = %s,
    checkpoint_sub_sequence = %s,
    records_stored = records_stored + %s,
    duplicates_dropped = duplicates_dropped + %s,
    records_rejected = records_rejected + %s,
    millis_behind_latest = COALESCE(%s, millis_behind_latest),
    -- The fenced commit proves ownership, so it renews the lease too: a
    -- worker committing back to back would otherwise keep meeting its own
    -- row lock in the lease loop and let the lease expire under it.
    lease_expires_at = CASE WHEN %s::float8 IS NULL THEN lease_expires_at
        ELSE GREATEST(lease_expires_at,
                      clock_timestamp() + make_interval(secs => %s::float8))
        END,
    -- clock_timestamp(), not now(): now() is when the transaction began, and
    -- a long batch would renew a lease that is already past.
    last_commit_at = clock_timestamp()
WHERE stream_name = %s AND shard_id = %s
"""


def lock_lease(cur: psycopg.Cursor, lease: LeaseToken) -> Checkpoint | None:
    """Lock the lease row for this transaction and return its checkpoint
    (None: none yet), or raise LeaseLost."""
    cur.execute(
        _LOCK_SQL,
        (lease.stream_name, lease.shard_id, lease.owner, lease.lease_counter),
    )
    row = cur.fetchone()
    if row is None:
        raise LeaseLost(
            f"shard {lease.shard_id} of {lease.stream_name} is no longer "
            f"held by {lease.owner} under lease counter {lease.lease_counter}"
        )
    sequence, sub_sequence = row
    return None if sequence is None else Checkpoint(sequence, sub_sequence)


def already_committed(batch: Batch, committed: Checkpoint | None) -> bool:
    """Whether this batch is one whose commit already happened.

    A batch's checkpoint is the position of its last record, and a reader
    reads from after the committed checkpoint, so a batch with records that
    ends exactly at it can only be the same batch again: its COMMIT went
    through but the acknowledgement was lost, and the caller retried.
    Storing it again would file its rejects twice and count its readings
    as duplicates on the lease row.
    """
    return bool(batch.items) and committed == batch.checkpoint


def move_checkpoint(
    cur: psycopg.Cursor, batch: Batch, stored: int, duplicates: int,
    rejected: int, lease_duration_s: float | None = None,
) -> None:
    """Move the (locked) lease row's checkpoint and add the batch's counts."""
    lease, checkpoint = batch.lease, batch.checkpoint
    cur.execute(
        _MOVE_SQL,
        (
            checkpoint.sequence_number,
            checkpoint.sub_sequence_number,
            stored,
            duplicates,
            rejected,
            batch.millis_behind_latest,
            lease_duration_s,
            lease_duration_s,
            lease.stream_name,
            lease.shard_id,
        ),
    )
