"""The sink's pure parts: binary COPY rows, in-batch repeats, refusals as
rejects, and the newest times per VEN. No database."""

from datetime import datetime, timedelta, timezone

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


def test_column_and_type_lists_match():
    assert len(rows.TELEMETRY_COPY_COLUMNS) == len(rows.TELEMETRY_COPY_TYPES)
    assert len(rows.SAMPLE_COPY_COLUMNS) == len(rows.SAMPLE_COPY_TYPES)
    assert len(rows.TELEMETRY_COPY_COLUMNS) == 14
    assert len(rows.SAMPLE_COPY_COLUMNS) == 11


def test_telemetry_row_in_column_order():
    r = _reading(record=RecordMeta("shardId-1", "4950", 2, ARRIVED),
                 event_id="a\tb")

    row = rows.telemetry_row((17, r))

    assert row == (
        17, "ven-1", T0, 3.18, None, 1, 3.9, "a\tb", 0.61, b'\x01{"a":1}',
        "shardId-1", "4950", 2, ARRIVED,
    )


def test_telemetry_row_without_metadata_has_null_provenance():
    assert rows.telemetry_row((1, _reading()))[-4:] == (None,) * 4


def test_sample_rows_carry_reading_id_and_timestamp():
    samples = [("hvac1", "HVAC", "hvac", 4.0, 1.42, 0.6, True, 1,
                '{"loadId":"hvac1"}'),
               ("pv1", None, "pv", 6.0, -2.1, 0.0, False, None, "{}")]

    out = list(rows.all_sample_rows([(9, _reading(samples=samples))]))

    assert out == [
        (9, T0, "hvac1", "HVAC", "hvac", 4.0, 1.42, 0.6, True, 1,
         b'\x01{"loadId":"hvac1"}'),
        (9, T0, "pv1", None, "pv", 6.0, -2.1, 0.0, False, None, b"\x01{}"),
    ]


def test_priority_that_int4_cannot_hold_is_unsendable():
    def row(priority):
        sample = ("l", None, None, None, None, None, None, priority, "{}")
        return (1, _reading(samples=[sample]))

    for fits in (-(2**31), 2**31 - 1):
        assert list(rows.sample_rows(row(fits)))[0][9] == fits
    for wraps in (2**31, -(2**31) - 1, 10**20):
        try:
            list(rows.sample_rows(row(wraps)))
        except rows.Unsendable as exc:
            assert "priority" in str(exc) and str(wraps) in str(exc)
        else:
            raise AssertionError(f"{wraps} was let through")


def test_jsonb_bytes_refuses_what_is_not_utf8_text():
    assert rows.jsonb_bytes('{"k":"é"}') == b'\x01{"k":"\xc3\xa9"}'
    for bad, words in (('{"x":"\ud800"}', "UTF-8"), (b"{}", "bytes")):
        try:
            rows.jsonb_bytes(bad)
        except rows.Unsendable as exc:
            assert "raw_payload" in str(exc) and words in str(exc)
        else:
            raise AssertionError(f"{bad!r} was let through")


class _RefusingCopy:
    """Stands in for psycopg's Copy: refuses rows as its dumpers would."""

    def __init__(self):
        self.written = []

    def write_row(self, values):
        if any(type(v) is str and v.startswith("bad") for v in values[3:4]):
            raise TypeError("must be real number, not str")
        self.written.append(values)


def test_write_rows_names_the_column_a_dumper_refused():
    copy = _RefusingCopy()
    good = rows.telemetry_row((1, _reading()))
    bad = rows.telemetry_row((2, _reading(used_power_kw="bad\t1")))

    try:
        rows.write_rows(copy, [good, bad], rows.TELEMETRY_COPY_COLUMNS,
                        rows.TELEMETRY_COPY_TYPES)
    except rows.Unsendable as exc:
        detail = str(exc)
    else:
        raise AssertionError("the bad row was let through")

    assert copy.written == [good]
    assert detail.startswith("used_power_kw: a str cannot be sent as double "
                             "precision")
    assert "must be real number" in detail


def test_split_repeats_keeps_the_first_of_each_key_apart():
    first = _reading(used_power_kw=1.0)
    items = [first, _reading(used_power_kw=2.0),
             _reading(ven_id="ven-2"), _reading(at=T0 + timedelta(seconds=1)),
             _reading(used_power_kw=3.0)]

    kept, repeats = rows.split_repeats(items)

    assert kept == [first, items[2], items[3]]
    assert repeats == [items[1], items[4]]


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
