"""A page of stream records -> decoded items and the checkpoint after them.

This is where the Kinesis side meets the decoder: KPL aggregates are split
into user records (each keeps its sub-sequence number), and every user record
becomes exactly one Reading or Reject.
"""

from worker.kinesis.client import StreamRecord
from worker.kinesis.kpl import AggregateError, split_user_records
from worker.records import DecodePolicy, decode_record
from worker.records.model import Decoded, Reason, Reject, RecordMeta
from worker.sink.batch import Checkpoint


def decode_page(records: list[StreamRecord], shard_id: str,
                policy: DecodePolicy) -> tuple[list[Decoded], Checkpoint | None]:
    items: list[Decoded] = []
    last: Checkpoint | None = None
    for record in records:
        seq = record.sequence_number
        try:
            user_records = split_user_records(record.data)
        except AggregateError as exc:
            meta = RecordMeta(shard_id, seq, 0, record.arrived_at,
                              record.partition_key)
            items.append(Reject(Reason.BAD_AGGREGATE, str(exc), record.data,
                                meta))
            last = Checkpoint(seq, 0)
            continue
        sub = 0
        for sub, data, key in user_records:
            meta = RecordMeta(shard_id, seq, sub, record.arrived_at,
                              key or record.partition_key)
            items.append(decode_record(data, meta, policy))
        last = Checkpoint(seq, sub)
    return items, last
