"""KPL de-aggregation, on aggregates built by the library's own aggregator."""

import hashlib
from datetime import UTC, datetime

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.kinesis.kpl import (
    MAGIC,
    AggregateError,
    UserRecord,
    _pb,
    split_user_records,
)
from worker.records import Reading, RecordMeta, decode_record

READING_A = (b'{"venId":"ven-001","timestamp":1764547200,"usedPowerKw":2.5,'
             b'"loads":[{"loadId":"hvac1","currentPowerKw":1.2}]}')
READING_B = (b'{"venId":"ven-002","timestamp":1764547201,"usedPowerKw":3.5,'
             b'"loads":[]}')


def aggregate(*records: tuple[str, bytes]) -> bytes:
    aggregator = RecordAggregator()
    for key, data in records:
        aggregator.add_user_record(key, data)
    _, _, data = aggregator.clear_and_get().get_contents()
    return data


def framed(message: bytes) -> bytes:
    """An aggregate around any protobuf bytes, with a correct MD5."""
    return MAGIC + message + hashlib.md5(message).digest()


def test_split_two_readings_keeps_sub_sequence_numbers():
    data = aggregate(("ven-001", READING_A), ("ven-002", READING_B))

    records = split_user_records(data)

    assert records == [UserRecord(0, READING_A, "ven-001"),
                       UserRecord(1, READING_B, "ven-002")]


def test_split_then_decode_gives_two_readings():
    data = aggregate(("ven-001", READING_A), ("ven-002", READING_B))
    arrived = datetime(2025, 12, 1, 0, 1, tzinfo=UTC)

    readings = [
        decode_record(user, RecordMeta("shardId-0", "495", sub, arrived, key))
        for sub, user, key in split_user_records(data)
    ]

    assert all(isinstance(r, Reading) for r in readings)
    assert [(r.ven_id, r.meta.sub_sequence_number) for r in readings] == [
        ("ven-001", 0), ("ven-002", 1),
    ]
    assert [r.used_power_kw for r in readings] == [2.5, 3.5]


def test_split_shared_partition_key_is_resolved_per_record():
    data = aggregate(("k", READING_A), ("k", READING_B), ("k", b"x"))

    records = split_user_records(data)

    assert [r.partition_key for r in records] == ["k", "k", "k"]
    assert [r.sub_sequence_number for r in records] == [0, 1, 2]


@pytest.mark.parametrize("data", [READING_A, b"", b"\xf3\x89", b"not json"])
def test_split_plain_record_is_one_user_record(data):
    assert split_user_records(data) == [UserRecord(0, data, None)]


def test_split_bad_md5_raises():
    data = bytearray(aggregate(("ven-001", READING_A)))
    data[-1] ^= 0xFF

    with pytest.raises(AggregateError, match="MD5"):
        split_user_records(bytes(data))


def test_split_corrupt_protobuf_with_valid_md5_raises():
    with pytest.raises(AggregateError, match="protobuf"):
        split_user_records(framed(b"\xff\xff\xff"))


def test_split_record_missing_required_fields_raises():
    # Field 3 (records) holding an empty Record: no data, no key index.
    with pytest.raises(AggregateError, match="required"):
        split_user_records(framed(b"\x1a\x00"))


def test_split_partition_key_index_out_of_table_raises():
    message = _pb.AggregatedRecord()
    message.partition_key_table.append("ven-001")
    record = message.records.add()
    record.partition_key_index = 3
    record.data = READING_A

    with pytest.raises(AggregateError, match="partition key 3"):
        split_user_records(framed(message.SerializeToString()))


def test_split_partition_key_not_utf8_raises():
    # Field 1 (key table) holding 0xFF 0xFE; one record pointing at it.
    message = b"\x0a\x02\xff\xfe" + b"\x1a\x06\x08\x00\x1a\x02hi"

    with pytest.raises(AggregateError, match="UTF-8"):
        split_user_records(framed(message))


def test_split_aggregate_without_records_raises():
    message = _pb.AggregatedRecord()
    message.partition_key_table.append("ven-001")

    with pytest.raises(AggregateError, match="no user records"):
        split_user_records(framed(message.SerializeToString()))


@pytest.mark.parametrize("tail", [b"", b"\x00" * 16, b"short"])
def test_split_too_short_aggregate_raises(tail):
    with pytest.raises(AggregateError, match="too short"):
        split_user_records(MAGIC + tail)


def test_aggregate_error_is_not_retriable():
    assert AggregateError.retriable is False


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_split_arbitrary_bytes_returns_records_or_raises_aggregate_error(
        body, with_md5):
    data = framed(body) if with_md5 else MAGIC + body
    try:
        records = split_user_records(data)
    except AggregateError:
        return
    assert records
    assert [r.sub_sequence_number for r in records] == list(range(len(records)))
    assert all(isinstance(r.data, bytes) for r in records)
    assert all(isinstance(r.partition_key, str) for r in records)
