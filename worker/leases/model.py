"""Plain data for leases: what discovery hands in, what the table hands out."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# The checkpoint of a shard that is closed and fully stored.
SHARD_END = "SHARD_END"


class ShardLike(Protocol):
    """What ``LeaseTable.ensure_rows`` needs of a discovered shard. The
    kinesis side's own shard type fits without conversion."""

    shard_id: str
    parent_shard_ids: tuple[str, ...] | list[str]
    starting_hash_key: str
    ending_hash_key: str


@dataclass(frozen=True, slots=True)
class Lease:
    """One row of ``shard_leases`` as the balancer sees it.

    ``expired`` is decided by the database clock when the row is read, so
    workers whose clocks disagree still agree on it. A lease handed to the
    runtime on acquisition carries its new ``lease_counter``, the one the
    sink's fenced commit must present, and the position to start from.
    """

    shard_id: str
    parent_shard_ids: tuple[str, ...]
    starting_hash_key: str
    ending_hash_key: str
    owner: str | None
    lease_counter: int
    expired: bool
    checkpoint_sequence: str | None = None
    checkpoint_sub_sequence: int = 0
    # Where an operator's reset asked the next reader to start (see
    # ``LeaseTable.reset``); None when the checkpoint says where.
    reset_to_timestamp: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.checkpoint_sequence == SHARD_END

    @property
    def free(self) -> bool:
        return self.owner is None or self.expired
