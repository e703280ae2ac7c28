"""Table definitions (SQLAlchemy Core): the one source of truth for the
worker's tables. Imports nothing from ``worker``."""

from schema.tables import (
    VEN_ID_MAX_LENGTH,
    ingest_rejects,
    ingest_workers,
    metadata,
    shard_leases,
    ven_last_seen,
    ven_load_samples,
    ven_telemetry,
)

__all__ = [
    "VEN_ID_MAX_LENGTH",
    "ingest_rejects",
    "ingest_workers",
    "metadata",
    "shard_leases",
    "ven_last_seen",
    "ven_load_samples",
    "ven_telemetry",
]
