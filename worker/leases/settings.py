"""Lease timing. Every number here trades failover speed against churn."""

from dataclasses import dataclass

# How long a lease lives without renewal. This is the longest a crashed
# worker's shards sit unread before another worker takes them. Much shorter,
# and a garbage-collection pause or a slow database round trip costs a worker
# its leases (and its readers a restart); much longer, and failover lags.
LEASE_DURATION_S = 10.0

# Renew (and heartbeat, take, steal) every third of the lease duration: two
# consecutive cycles can fail before a lease expires.
CYCLES_PER_LEASE = 3

# Each steal restarts a reader on two workers; moving one lease per cycle
# lets a new worker fill up within a few cycles without a wave of restarts,
# and lets the others' views settle between moves.
MAX_STEALS_PER_CYCLE = 1

# How long one lease statement may wait for a row lock. The sink's commit
# holds the lease row FOR UPDATE; a steal or renewal waits for it rather than
# overriding it. The cap keeps one long commit from stalling the whole cycle
# (and every other lease's renewal) past expiry: the statement gives up and
# the next cycle tries again. A fraction of the cycle leaves room for several
# such waits in one cycle.
LOCK_WAIT_FRACTION_OF_CYCLE = 0.25

# Rows of workers silent this long are deleted. Long enough that an operator
# can still see in `status` which worker vanished recently; short enough that
# replaced ECS tasks (a new id each) do not pile up.
DEAD_WORKER_RETENTION_S = 3600.0


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    lease_duration_s: float = LEASE_DURATION_S
    # None: a third of the lease duration (see CYCLES_PER_LEASE).
    renew_interval_s: float | None = None
    max_steals_per_cycle: int = MAX_STEALS_PER_CYCLE
    dead_worker_retention_s: float = DEAD_WORKER_RETENTION_S

    def __post_init__(self):
        if self.lease_duration_s <= 0:
            raise ValueError("lease duration must be positive")
        if not 0 < self.cycle_interval_s < self.lease_duration_s:
            raise ValueError("renew interval must be under the lease duration")
        if self.max_steals_per_cycle < 0:
            raise ValueError("max steals per cycle must be >= 0")

    @property
    def cycle_interval_s(self) -> float:
        if self.renew_interval_s is not None:
            return self.renew_interval_s
        return self.lease_duration_s / CYCLES_PER_LEASE

    @property
    def lock_wait_s(self) -> float:
        return self.cycle_interval_s * LOCK_WAIT_FRACTION_OF_CYCLE
