"""What ``status`` reports: plain dataclasses, no I/O.

Times are UTC datetimes from the database clock (the clock leases use), ages
and durations are seconds, lags are milliseconds as Kinesis gives them.
"""

from dataclasses import dataclass, field
from datetime import datetime

# A shard's state, as people read it in the table.
READING = "reading"        # a live lease: its owner is reading it
FREE = "free"              # no owner: the next worker cycle takes it
EXPIRED = "expired"        # the owner stopped renewing; it will be taken
ENDED = "ended"            # closed by resharding and fully stored
WAITING = "waiting for parents"  # a child whose parents are not ended yet
UNLEASED = "no lease row"  # open in Kinesis, but no worker has listed it yet

STATES = (READING, FREE, EXPIRED, ENDED, WAITING, UNLEASED)

# Where a shard's MillisBehindLatest came from.
LAG_LIVE = "kinesis"  # measured by status now, at the shard's checkpoint
LAG_RECORDED = "worker"  # written by the worker at its last commit


@dataclass(slots=True)
class ShardStatus:
    shard_id: str
    parent_shard_ids: list[str]
    starting_hash_key: str
    ending_hash_key: str
    state: str
    owner: str | None = None
    lease_counter: int = 0
    # Negative once expired; None when nobody holds the lease.
    lease_expires_in_s: float | None = None
    # A sequence number, "SHARD_END", or None (start at the initial position).
    checkpoint: str | None = None
    # An operator's reset that no commit has superseded yet.
    pending_reset_to: datetime | None = None
    # True when Kinesis lists the shard as closed (or its lease ended); None
    # when neither Kinesis nor the lease row can tell.
    closed: bool | None = None
    # The lag shown, and where it came from (LAG_LIVE or LAG_RECORDED).
    millis_behind_latest: int | None = None
    lag_source: str | None = None
    recorded_millis_behind: int | None = None
    live_millis_behind: int | None = None
    last_commit_at: datetime | None = None
    records_stored: int = 0
    duplicates_dropped: int = 0
    records_rejected: int = 0
    # The newest reading of the VENs whose newest reading came through this
    # shard (see leases_view.newest_by_shard), and how many VENs that is.
    newest_reading_at: datetime | None = None
    newest_reading_age_s: float | None = None
    vens_latest_here: int = 0


@dataclass(slots=True)
class WorkerStatus:
    worker_id: str
    selector: str | None
    # None: the worker owns leases but has no row in ingest_workers.
    heartbeat_age_s: float | None
    live: bool
    leases_held: int = 0
    # Leases still in its name whose expiry passed.
    leases_expired: int = 0


@dataclass(slots=True)
class Totals:
    open_shards: int = 0
    ended_shards: int = 0
    records_stored: int = 0
    duplicates_dropped: int = 0
    records_rejected: int = 0
    live_workers: int = 0
    leases_held: int = 0
    max_millis_behind: int | None = None
    newest_reading_at: datetime | None = None
    newest_reading_age_s: float | None = None


@dataclass(slots=True)
class StreamStatus:
    stream_name: str
    schema: str
    checked_at: datetime
    kinesis_endpoint: str | None
    # None when Kinesis could not be asked.
    stream_status: str | None
    kinesis_reachable: bool
    shards: list[ShardStatus] = field(default_factory=list)
    workers: list[WorkerStatus] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    warnings: list[str] = field(default_factory=list)
