"""What the runtime hands to a sink, and what it gets back.

A batch is everything one shard read since its last commit: readings and
rejects in stream order, the lease it was read under, and the checkpoint to
move to once every item in it is stored, counted as a duplicate, or rejected.
"""

import collections
from dataclasses import dataclass
from typing import Protocol

# SHARD_END: the checkpoint of a closed shard whose every record is stored
# (its children may start). The lease table owns the value; batches carry it.
from worker.leases.model import SHARD_END
from worker.records.model import Reading, Reject


@dataclass(frozen=True, slots=True)
class LeaseToken:
    """The ownership a batch was read under; the commit proves it still
    holds."""

    stream_name: str
    shard_id: str
    owner: str
    lease_counter: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    # A Kinesis sequence number, or SHARD_END.
    sequence_number: str
    sub_sequence_number: int = 0


@dataclass(slots=True)
class Batch:
    lease: LeaseToken
    items: list[Reading | Reject]
    checkpoint: Checkpoint
    millis_behind_latest: int | None = None


@dataclass(slots=True)
class BatchResult:
    """Where every item of a committed batch went."""

    stored: int
    duplicates: int
    rejected: collections.Counter  # Counter[Reason]


class Sink(Protocol):
    def write(self, batch: Batch) -> BatchResult:
        """Store the batch and move its checkpoint, all or nothing.

        Raises LeaseLost when the lease moved on, and psycopg.OperationalError
        or TransientError when trying the same batch again may succeed.
        """
        ...

    def close(self) -> None:
        """Release the sink's connection; a failed write is followed by
        close() and a new sink."""
        ...
