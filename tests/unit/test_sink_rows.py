"""The sink's pure parts: COPY text, in-batch repeats, refusals as rejects,
and the newest times per VEN. No database."""

import re
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from worker.records.model import Reading, Reason, RecordMeta
from worker.sink import rows
from worker.sink.last_seen import newest_per_ven

T0 = datetime(2025, 12, 1, tzinfo=timezone.utc)
ARRIVED = datetime(2025, 12, 1, 0, 0, 30, tzinfo=timezone.utc)


def _reading(ven_id="ven-1", at=T0, samples=(), record=None, **fields):
    values = dict(used_power_kw=3.18, shed_power_kw=None,
                  requested_reduction_kw=1, baseline_power_kw=3.9,
                  event_id="evt-a", battery_soc=0.61, raw_payload='{"a":1}')
    values.update(fields)
    return Reading(ven_id=ven_id, timestamp=at, samples=list(samples),
                   meta=record, **values)


def _unescape(field: str):
    """PostgreSQL's reading of one COPY text field (the escapes we emit)."""
    if field == "\\N":
        return None
    names = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
    return re.sub(r"\\(.)", lambda m: names[m.group(1)], field)


@given(st.text())
def test_copy_text_round_trips_and_never_splits_fields(text):
    field = rows.copy_text(text)

    assert "\t" not in field and "\n" not in field and "\r" not in field
    assert _unescape(field) == text


def test_copy_text_of_none_and_of_other_types():
    assert rows.copy_text(None) == "\\N"
    assert rows.copy_text("\\N") == "\\\\N"
    assert rows.copy_text(12) == "12"


def test_copy_number_keeps_every_digit_and_escapes_non_numbers():
    assert rows.copy_number(0.1 + 0.2) == "0.30000000000000004"
    assert rows.copy_number(-2.1) == "-2.1"
    assert rows.copy_number(1e300) == "1e+300"
    assert rows.copy_number(3) == "3"
    assert rows.copy_number(None) == "\\N"
    assert rows.copy_number("1\t2") == "1\\t2"


def test_copy_boolean():
    assert [rows.copy_boolean(v) for v in (True, False, None)] == [
        "t", "f", "\\N"
    ]
    assert rows.copy_boolean("yes\n") == "yes\\n"


def test_telemetry_line_in_column_order():
    r = _reading(record=RecordMeta("shardId-1", "4950", 2, ARRIVED),
                 event_id="a\tb")

    line = rows.telemetry_line((17, "2025-12-01T00:00:00+00:00", r))

    assert line.split("\t") == [
        "17", "ven-1", "2025-12-01T00:00:00+00:00", "3.18", "\\N", "1",
        "3.9", "a\\tb", "0.61", '{"a":1}', "shardId-1", "4950", "2",
        "2025-12-01T00:00:30+00:00\n",
    ]
    assert len(rows.TELEMETRY_COPY_COLUMNS) == 14


def test_telemetry_line_without_metadata_has_null_provenance():
    line = rows.telemetry_line((1, "x", _reading()))

    assert line.rstrip("\n").split("\t")[-4:] == ["\\N"] * 4


def test_sample_lines_carry_reading_id_and_timestamp():
    samples = [("hvac1", "HVAC", "hvac", 4.0, 1.42, 0.6, True, 1,
                '{"loadId":"hvac1"}'),
               ("pv1", None, "pv", 6.0, -2.1, 0.0, False, None, "{}")]

    lines = list(rows.sample_lines((9, "TS", _reading(samples=samples))))

    assert lines == [
        '9\tTS\thvac1\tHVAC\thvac\t4.0\t1.42\t0.6\tt\t1\t{"loadId":"hvac1"}\n',
        "9\tTS\tpv1\t\\N\tpv\t6.0\t-2.1\t0.0\tf\t\\N\t{}\n",
    ]
    assert len(rows.SAMPLE_COPY_COLUMNS) == 11


def test_chunks_cover_every_row_once():
    batch = [(i, "TS", _reading(ven_id=f"v{i}", samples=[("l",) * 9]))
             for i in range(2 * rows.COPY_CHUNK_READINGS + 3)]

    telemetry = list(rows.telemetry_chunks(batch))
    samples = list(rows.sample_chunks(batch))

    assert len(telemetry) == len(samples) == 3
    text = b"".join(telemetry).decode()
    assert text == "".join(rows.telemetry_line(row) for row in batch)
    assert b"".join(samples).count(b"\n") == len(batch)


def test_lone_surrogate_reaches_postgres_as_bytes_it_refuses():
    batch = [(1, "TS", _reading(raw_payload='{"x":"\ud800"}'))]

    (chunk,) = rows.telemetry_chunks(batch)

    assert b'{"x":"\xed\xa0\x80"}' in chunk


def test_drop_repeats_keeps_the_first_of_each_key():
    first = _reading(used_power_kw=1.0)
    items = [first, _reading(used_power_kw=2.0),
             _reading(ven_id="ven-2"), _reading(at=T0 + timedelta(seconds=1)),
             _reading(used_power_kw=3.0)]

    kept, dropped = rows.drop_repeats(items)

    assert dropped == 2
    assert kept == [first, items[2], items[3]]


def test_unstorable_key():
    assert rows.unstorable_key(_reading()) is None
    assert rows.unstorable_key(_reading(ven_id="vén-1")) is None
    assert "NUL" in rows.unstorable_key(_reading(ven_id="v\x00"))
    assert "surrogate" in rows.unstorable_key(_reading(ven_id="v\udc80"))
    assert "int" in rows.unstorable_key(_reading(ven_id=7))


def test_refused_keeps_payload_text_as_utf8_bytes():
    record = RecordMeta("shardId-1", "12", 0)
    r = _reading(raw_payload='{"name":"Küche \ud800"}', record=record)

    reject = rows.refused(r, "value too long")

    assert reject.reason is Reason.DATABASE_REFUSED
    assert reject.raw == '{"name":"Küche '.encode() + b'\xed\xa0\x80"}'
    assert (reject.detail, reject.meta) == ("value too long", record)


def test_storable_text_escapes_what_text_columns_refuse():
    assert rows.storable_text("plain é") == "plain é"
    assert rows.storable_text("a\x00b") == "a\\x00b"
    assert rows.storable_text("x\ud800") == "x\\ud800"


def test_newest_per_ven_in_any_order():
    def at(s):
        return T0 + timedelta(seconds=s)

    items = [
        _reading("a", at(5), record=RecordMeta("s", "1", 0, at(50))),
        _reading("a", at(9), record=RecordMeta("s", "2", 0, at(40))),
        _reading("a", at(1), record=RecordMeta("s", "3", 0, None)),
        _reading("b", at(3), record=None),
    ]

    assert newest_per_ven(items) == {
        "a": [at(9), at(50)],
        "b": [at(3), None],
    }
