"""Rejects into ``ingest_rejects``, raw bytes kept byte for byte."""

from collections.abc import Sequence

import psycopg

from worker.records.model import Reject
from worker.sink.batch import Batch
from worker.sink.rows import storable_text

_COPY_REJECTS = (
    "COPY ingest_rejects (stream_name, shard_id, sequence_number, "
    "sub_sequence_number, raw_data, reason_code, error_detail, arrived_at) "
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
    with cur.copy(_COPY_REJECTS) as copy:
        for reject in rejects:
            meta = reject.meta
            if meta is None:
                position = (lease.shard_id, checkpoint.sequence_number, None,
                            None)
            else:
                position = (meta.shard_id, meta.sequence_number,
                            meta.sub_sequence_number, meta.arrived_at)
            shard_id, sequence_number, sub_sequence, arrived_at = position
            copy.write_row((
                lease.stream_name,
                shard_id,
                sequence_number,
                sub_sequence,
                bytes(reject.raw),
                reject.reason.value,
                storable_text(reject.detail),
                arrived_at,
            ))
