"""Rejects into ``ingest_rejects``, raw bytes kept byte for byte."""

from collections.abc import Sequence

import psycopg

from worker.records.model import Reject
from worker.sink.batch import Batch
from worker.sink.rows import storable_text

_COPY_REJECTS = (
    "COPY ingest_rejects (stream_name, shard_id, sequence_number, "
    "sub_sequence_number, arrived_at, raw_data, reason_code, error_detail) "
    "FROM STDIN"
)


def insert_rejects(
    cur: psycopg.Cursor, batch: Batch, rejects: Sequence[Reject]
) -> None:
    """Store ``rejects`` with the batch's stream name.

    A reject without metadata (only tests build those) is filed under the
    lease's shard and the batch's checkpoint sequence number, the last
    position it can have come from.
    """
    if not rejects:
        return
    lease, checkpoint = batch.lease, batch.checkpoint
    unknown = (lease.shard_id, checkpoint.sequence_number, None, None)
    with cur.copy(_COPY_REJECTS) as copy:
        for reject in rejects:
            meta = reject.meta
            where = unknown if meta is None else (
                meta.shard_id, meta.sequence_number,
                meta.sub_sequence_number, meta.arrived_at,
            )
            # psycopg escapes every value of write_row itself; the bytes
            # go in as bytea, exactly as they came.
            copy.write_row((
                lease.stream_name, *where, bytes(reject.raw),
                reject.reason.value, storable_text(reject.detail),
            ))
