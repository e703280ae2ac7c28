"""The sink: one fenced PostgreSQL transaction per batch (rows, rejects,
last-seen, checkpoint), and the daily partitions the rows land in."""

from worker.sink.batch import (
    SHARD_END,
    Batch,
    BatchResult,
    Checkpoint,
    LeaseToken,
    Sink,
)
from worker.sink.partitions import drop_expired_partitions, ensure_partitions
from worker.sink.postgres import PostgresSink, SinkSettings

__all__ = [
    "SHARD_END",
    "Batch",
    "BatchResult",
    "Checkpoint",
    "LeaseToken",
    "PostgresSink",
    "Sink",
    "SinkSettings",
    "drop_expired_partitions",
    "ensure_partitions",
]
