"""Reading times: every accepted form, exact fractions, and the range bounds
(measured from arrival when known, else from the policy's clock)."""

import time
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from worker.records import (
    DecodePolicy,
    Reading,
    Reason,
    RecordMeta,
    Reject,
    decode_record,
)

ARRIVED = datetime(2025, 12, 1, 0, 0, 30, tzinfo=UTC)
META = RecordMeta("shardId-0", "1", 0, ARRIVED)


def payload(timestamp, key: str = "timestamp") -> bytes:
    body = {"venId": "ven-001", key: timestamp, "usedPowerKw": 1.0}
    return orjson.dumps(body)


def payload_raw(timestamp_json: str) -> bytes:
    return ('{"venId":"ven-001","timestamp":' + timestamp_json +
            ',"usedPowerKw":1.0}').encode()


def decoded_time(data: bytes, meta=META, policy=None) -> datetime:
    result = decode_record(data, meta, policy or DecodePolicy())
    assert isinstance(result, Reading), result
    assert result.timestamp.tzinfo is not None
    assert result.timestamp.utcoffset() == timedelta(0)
    return result.timestamp


def rejected(data: bytes, meta=META, policy=None) -> Reject:
    result = decode_record(data, meta, policy or DecodePolicy())
    assert isinstance(result, Reject), result
    assert result.raw == data
    return result


@pytest.mark.parametrize(("text", "micro"), [
    ("1764547200.001", 1_000),
    ("1764547200.1", 100_000),
    ("1764547200.999", 999_000),
    ("1764547200.123456", 123_456),
    ('"1764547200.0000005"', 0),     # half a microsecond: rounds to even
    ('"1764547200.0000015"', 2),
    ("1764547200123", 123_000),      # milliseconds
    ("1764547200123.5", 123_500),
    ("1.7645472001e9", 100_000),
])
def test_decode_epoch_keeps_exact_fraction(text, micro):
    moment = decoded_time(payload_raw(text))

    assert moment.replace(microsecond=0) == datetime(2025, 12, 1, tzinfo=UTC)
    assert moment.microsecond == micro


@pytest.mark.parametrize("text", ['"1764547200.5"', '"1764547200500"',
                                  '"+1764547200.5"'])
def test_decode_numeric_string_is_epoch(text):
    moment = decoded_time(payload_raw(text))

    assert moment == datetime(2025, 12, 1, 0, 0, 0, 500_000, tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "2025-12-01T00:00:00Z",
    "2025-12-01T01:00:00+01:00",
    "2025-11-30T19:00:00-05:00",
    "2025-12-01T00:00:00",           # no offset: UTC
    "2025-12-01 00:00:00.000Z",
])
def test_decode_iso_text_converts_to_utc(text):
    assert decoded_time(payload(text)) == datetime(2025, 12, 1, tzinfo=UTC)


def test_decode_ts_used_when_timestamp_absent():
    assert decoded_time(payload(1764547200, key="ts")) == datetime(
        2025, 12, 1, tzinfo=UTC)


def test_decode_timestamp_wins_over_ts():
    data = b'{"venId":"v","timestamp":1764547200,"ts":1764547999}'

    assert decoded_time(data) == datetime(2025, 12, 1, tzinfo=UTC)


def test_decode_result_does_not_depend_on_local_time_zone(monkeypatch):
    data = payload("2025-12-01T00:00:00")
    before = decoded_time(data)

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        after = decoded_time(data)
    finally:
        monkeypatch.undo()
        time.tzset()

    assert before == after == datetime(2025, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", [
    0, 946684799, "1999-12-31T23:59:59Z", -1, "-1764547200",
])
def test_decode_before_2000_is_out_of_range(value):
    assert rejected(payload(value)).reason is Reason.TIMESTAMP_OUT_OF_RANGE


def test_decode_future_bound_is_measured_from_arrival():
    at_bound = int(ARRIVED.timestamp()) + 3600
    policy = DecodePolicy(now=lambda: datetime(2030, 1, 1, tzinfo=UTC))

    # The clock says 2030, but arrival decides: replays decide the same way.
    assert decoded_time(payload(at_bound), policy=policy)
    reject = rejected(payload(at_bound + 1), policy=policy)
    assert reject.reason is Reason.TIMESTAMP_OUT_OF_RANGE
    assert "timestamp" in reject.detail


def test_decode_future_bound_uses_clock_without_arrival():
    now = datetime(2025, 12, 1, tzinfo=UTC)
    policy = DecodePolicy(now=lambda: now, max_future_skew_s=60)
    no_arrival = RecordMeta("shardId-0", "1", 0, None)

    assert decoded_time(payload(1764547260), no_arrival, policy)
    reject = rejected(payload(1764547261), no_arrival, policy)
    assert reject.reason is Reason.TIMESTAMP_OUT_OF_RANGE


def test_decode_arrival_in_other_zone_is_the_same_instant():
    plus_two = ARRIVED.astimezone(timezone(timedelta(hours=2)))
    meta = RecordMeta("shardId-0", "1", 0, plus_two)

    assert decoded_time(payload(int(ARRIVED.timestamp()) + 3600), meta)


@pytest.mark.parametrize("text", [
    "13569465600",                   # year 2400 in seconds
    '"1e999999"', '"-1e999999"', "99999999999999999999999999",
    '"9999-12-31T23:59:59-23:59"',   # off the calendar once in UTC
])
def test_decode_far_values_are_out_of_range(text):
    reject = rejected(payload_raw(text))

    assert reject.reason is Reason.TIMESTAMP_OUT_OF_RANGE


@pytest.mark.parametrize("text", [
    "true", '"yesterday"', '"1764547200s"', "[1764547200]", '{"s":1}',
    '"\u0661\u0667\u0666\u0664"',    # Arabic-Indic digits: not epoch text
    '""', '"NaN"', '"Infinity"',
])
def test_decode_unreadable_timestamp_is_bad(text):
    reject = rejected(payload_raw(text))

    assert reject.reason is Reason.BAD_TIMESTAMP
    assert "timestamp" in reject.detail


@pytest.mark.parametrize("data", [
    b'{"venId":"ven-001","usedPowerKw":1.0}',
    b'{"venId":"ven-001","timestamp":null,"ts":null,"usedPowerKw":1.0}',
])
def test_decode_missing_timestamp(data):
    assert rejected(data).reason is Reason.MISSING_TIMESTAMP
