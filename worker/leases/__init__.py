"""Shard leases in PostgreSQL: the table (take, renew, steal, release, reset)
and the per-worker loop that keeps a fair share of them."""

from worker.leases.coordinator import LeaseCoordinator
from worker.leases.identity import worker_identity
from worker.leases.model import SHARD_END, Lease
from worker.leases.settings import LeaseSettings
from worker.leases.table import LeaseBusy, LeaseTable

__all__ = [
    "SHARD_END",
    "Lease",
    "LeaseBusy",
    "LeaseCoordinator",
    "LeaseSettings",
    "LeaseTable",
    "worker_identity",
]
