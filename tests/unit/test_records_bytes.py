"""Faults below the fields: size, gzip, UTF-8, JSON syntax, nesting, numbers
a double cannot hold, and the decoder's own failures."""

import gzip
import logging
import zlib
from datetime import UTC, datetime

import pytest

from worker.records import (
    DecodePolicy,
    Reading,
    Reason,
    RecordMeta,
    Reject,
    decode_record,
)
from worker.records import decode as decode_module

META = RecordMeta("shardId-0", "1", 0, datetime(2025, 12, 1, 0, 1, tzinfo=UTC))
GOOD = (b'{"venId":"ven-001","timestamp":1764547200,"usedPowerKw":2.5,'
        b'"loads":[{"loadId":"hvac1","currentPowerKw":1.2}]}')


def decode(data, policy: DecodePolicy | None = None):
    return decode_record(data, META, policy or DecodePolicy())


def rejected(data, reason: Reason, policy: DecodePolicy | None = None):
    result = decode(data, policy)
    assert isinstance(result, Reject), result
    assert result.reason is reason, result.detail
    assert result.meta is META
    return result


def with_field(value: bytes) -> bytes:
    return GOOD[:-1] + b',"x":' + value + b"}"


def test_decode_record_over_size_limit_is_too_large():
    policy = DecodePolicy(max_record_bytes=len(GOOD) - 1)

    reject = rejected(GOOD, Reason.TOO_LARGE, policy)

    assert reject.raw == GOOD
    assert isinstance(decode(GOOD, DecodePolicy(max_record_bytes=len(GOOD))),
                      Reading)


def test_decode_gzip_payload_is_inflated():
    reading = decode(gzip.compress(GOOD))

    assert isinstance(reading, Reading)
    assert reading.raw_payload == GOOD.decode()


def test_decode_gzip_multi_member_is_joined():
    data = gzip.compress(GOOD[:20]) + gzip.compress(GOOD[20:])

    assert decode(data).raw_payload == GOOD.decode()


def test_decode_gzip_bomb_is_too_large_and_keeps_compressed_bytes():
    bomb = gzip.compress(b" " * 5_000_000)
    policy = DecodePolicy(max_inflated_bytes=1_000_000)

    reject = rejected(bomb, Reason.TOO_LARGE, policy)

    assert reject.raw == bomb
    assert "1000000" in reject.detail


@pytest.mark.parametrize("data", [
    gzip.compress(GOOD)[:-12],                      # truncated
    gzip.compress(GOOD) + b"trailing",              # garbage after a member
    b"\x1f\x8b" + b"\x00" * 20,                     # header only
    gzip.compress(GOOD)[:10] + zlib.compress(GOOD)[2:],  # bad deflate data
])
def test_decode_broken_gzip_is_bad_compression(data):
    assert rejected(data, Reason.BAD_COMPRESSION).raw == data


@pytest.mark.parametrize("data", [
    b'{"venId":"ven-\xa0"}',
    b'{"venId":"ven-\xed\xa0\x80"}',                # an encoded surrogate
    b'\xff\xfe{\x00"\x00',                          # UTF-16
])
def test_decode_invalid_utf8_names_the_offset(data):
    reject = rejected(data, Reason.INVALID_UTF8)

    assert "offset" in reject.detail
    assert reject.raw == data


@pytest.mark.parametrize("data", [
    b"", b"   ", b"{", b'{"venId":', b"\xef\xbb\xbf" + GOOD,  # BOM
    b'{"venId":"ven\x00-001"}',                     # a raw NUL byte
    GOOD[:-1] + b',}', b"venId=ven-001", b"'{}'",
])
def test_decode_malformed_json_is_not_json(data):
    assert rejected(data, Reason.NOT_JSON).raw == data


@pytest.mark.parametrize(("value", "where"), [
    (b"NaN", "x"), (b"-Infinity", "x"), (b"[1, Infinity]", "x[1]"),
    (b"1e400", "x"), (b"-1e400", "x"), (b"1" * 400, "x"),
    (b'{"y":[0,{"z":1e999}]}', "x.y[1].z"),
])
def test_decode_non_finite_number_names_its_place(value, where):
    reject = rejected(with_field(value), Reason.NON_FINITE_NUMBER)

    assert reject.detail.startswith(where + " is ")


def test_decode_non_finite_inside_a_load_names_the_load():
    data = GOOD.replace(b'"currentPowerKw":1.2', b'"currentPowerKw":Infinity')

    reject = rejected(data, Reason.NON_FINITE_NUMBER)

    assert reject.detail.startswith("loads[0].currentPowerKw")


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_decode_nesting_up_to_1024_levels_is_stored():
    # The payload object is level 1, so 1023 arrays make 1024 levels.
    reading = decode(with_field(nested(1023)))

    assert isinstance(reading, Reading)


@pytest.mark.parametrize("levels", [1024, 1500, 100_000])
def test_decode_nesting_past_1024_levels_is_too_deep(levels):
    assert rejected(with_field(nested(levels)), Reason.TOO_DEEP)


def test_decode_nesting_depth_ignores_brackets_inside_strings():
    data = with_field(b'"' + b"[" * 5000 + b'"')

    assert isinstance(decode(data), Reading)


def test_decode_load_too_deep_to_reencode_is_too_deep():
    deep_load = b'{"loadId":"a","x":' + nested(300) + b"}"
    data = GOOD.replace(b'{"loadId":"hvac1","currentPowerKw":1.2}', deep_load)

    reject = rejected(data, Reason.TOO_DEEP)

    assert reject.detail.startswith("loads[0] ")


def test_decode_accepts_bytearray_and_memoryview():
    assert isinstance(decode(bytearray(GOOD)), Reading)
    assert isinstance(decode(memoryview(GOOD)), Reading)


def test_decode_non_bytes_input_is_a_reject_not_an_exception():
    reject = rejected(GOOD.decode(), Reason.DECODER_ERROR)

    assert reject.raw == b""
    assert "str" in reject.detail


def test_decode_internal_failure_is_rejected_and_logged(monkeypatch, caplog):
    def broken(*args):
        raise KeyError("a bug")

    monkeypatch.setattr(decode_module, "build_reading", broken)

    with caplog.at_level(logging.ERROR, logger="worker.records.decode"):
        reject = rejected(GOOD, Reason.DECODER_ERROR)

    assert reject.raw == GOOD
    assert "KeyError" in reject.detail
    assert "shardId-0" in caplog.text
