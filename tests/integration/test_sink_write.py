"""PostgresSink stores readings, samples and rejects with exact values."""

import collections
from datetime import datetime, timezone

from sink_support import (  # noqa: F401  (sink is a fixture)
    ARRIVED,
    SHARD,
    STREAM,
    T0,
    add_lease,
    batch,
    count,
    meta,
    reading,
    sample,
    sink,
)
from worker.records.model import Reason, Reject


def test_write_stores_reading_with_exact_values(db, sink):
    lease = add_lease(db)
    r = reading("ven-0042", T0, record=meta("4950", 3))

    result = sink.write(batch(lease, [r], seq="4950", sub=3))

    assert result.stored == 1
    assert result.duplicates == 0
    assert result.rejected == collections.Counter()
    row = db.execute(
        "SELECT ven_id, timestamp, used_power_kw, shed_power_kw, "
        "requested_reduction_kw, baseline_power_kw, event_id, battery_soc, "
        "raw_payload, shard_id, sequence_number, sub_sequence_number, "
        "arrived_at, created_at IS NOT NULL, id > 0 FROM ven_telemetry"
    ).fetchall()
    assert row == [(
        "ven-0042", T0, 3.18, 0.75, 1.0, 3.93, "evt-a", 0.61,
        {"venId": "ven-0042", "timestamp": T0.timestamp(),
         "used_power_kw": 3.18, "shed_power_kw": 0.75,
         "requested_reduction_kw": 1.0, "baseline_power_kw": 3.93,
         "event_id": "evt-a", "battery_soc": 0.61},
        SHARD, "4950", 3, ARRIVED, True, True,
    )]


def test_samples_link_to_their_reading_by_telemetry_id(db, sink):
    lease = add_lease(db)
    readings = [
        reading("ven-1", 0, samples=[sample("a"), sample("b", priority=9)]),
        reading("ven-2", 0, samples=[sample("c", enabled=False,
                                            shed_capability_kw=None)]),
        reading("ven-3", 0, samples=[]),
    ]

    sink.write(batch(lease, readings))

    rows = db.execute(
        "SELECT t.ven_id, s.load_id, s.name, s.type, s.capacity_kw, "
        "s.current_power_kw, s.shed_capability_kw, s.enabled, s.priority, "
        "s.raw_payload, s.reading_timestamp = t.timestamp "
        "FROM ven_load_samples s JOIN ven_telemetry t ON s.telemetry_id = t.id "
        "ORDER BY t.ven_id, s.load_id"
    ).fetchall()
    assert rows == [
        ("ven-1", "a", "A", "hvac", 4.0, 1.25, 0.5, True, 2,
         {"loadId": "a", "priority": 2}, True),
        ("ven-1", "b", "B", "hvac", 4.0, 1.25, 0.5, True, 9,
         {"loadId": "b", "priority": 9}, True),
        ("ven-2", "c", "C", "hvac", 4.0, 1.25, None, False, 2,
         {"loadId": "c", "priority": 2}, True),
    ]
    assert count(db, "ven_load_samples") == 3
    assert count(db, "ven_telemetry") == 3


def test_null_fields_are_stored_as_null(db, sink):
    lease = add_lease(db)
    r = reading("ven-1", 0, used_power_kw=None, shed_power_kw=None,
                requested_reduction_kw=None, baseline_power_kw=None,
                event_id=None, battery_soc=None,
                samples=[(None, None, None, None, None, None, None, None,
                          "{}")],
                record=meta(arrived=None))

    sink.write(batch(lease, [r]))

    assert db.execute(
        "SELECT used_power_kw, shed_power_kw, requested_reduction_kw, "
        "baseline_power_kw, event_id, battery_soc, arrived_at "
        "FROM ven_telemetry"
    ).fetchone() == (None,) * 7
    assert db.execute(
        "SELECT load_id, name, type, capacity_kw, current_power_kw, "
        "shed_capability_kw, enabled, priority, raw_payload "
        "FROM ven_load_samples"
    ).fetchone() == (None,) * 8 + ({},)


def test_text_that_looks_like_copy_syntax_is_stored_verbatim(db, sink):
    lease = add_lease(db)
    tricky = "tab\there\nnewline\r\\N back\\slash \\. end"
    r = reading(
        "ven-1", 0, event_id=tricky,
        raw_payload='{\n\t"venId": "ven-1",\n\t"note": "a\\\\b\\tc"\n}',
        samples=[sample("c1", name=tricky, type="\\N")],
    )

    sink.write(batch(lease, [r]))

    assert db.execute(
        "SELECT event_id, raw_payload FROM ven_telemetry"
    ).fetchone() == (tricky, {"venId": "ven-1", "note": "a\\b\tc"})
    assert db.execute(
        "SELECT name, type FROM ven_load_samples"
    ).fetchone() == (tricky, "\\N")
    assert count(db, "ven_telemetry") == 1


def test_timestamps_keep_microseconds_and_any_offset(db, sink):
    lease = add_lease(db)
    at = datetime(2025, 12, 1, 23, 59, 59, 999999, tzinfo=timezone.utc)

    sink.write(batch(lease, [reading("ven-1", at)]))

    stored = db.execute(
        "SELECT t.timestamp, s.reading_timestamp FROM ven_telemetry t "
        "JOIN ven_load_samples s ON s.telemetry_id = t.id LIMIT 1"
    ).fetchone()
    assert stored == (at, at)


def test_rejects_keep_raw_bytes_byte_for_byte(db, sink):
    lease = add_lease(db)
    every_byte = bytes(range(256))
    rejects = [
        Reject(Reason.NOT_JSON, "not JSON at byte 0", every_byte,
               meta("5001", 0)),
        Reject(Reason.INVALID_UTF8, "invalid start byte\x00 here",
               b"\xa0\x00", meta("5002", 4)),
        Reject(Reason.BAD_FIELD, "usedPowerKw: not a number", b"",
               meta("5003", 0)),
    ]

    result = sink.write(batch(lease, rejects + [reading("ven-1", 0)],
                              seq="5003"))

    assert result.stored == 1
    assert result.rejected == collections.Counter(
        {Reason.NOT_JSON: 1, Reason.INVALID_UTF8: 1, Reason.BAD_FIELD: 1}
    )
    rows = db.execute(
        "SELECT stream_name, shard_id, sequence_number, sub_sequence_number, "
        "raw_data, reason_code, error_detail, arrived_at "
        "FROM ingest_rejects ORDER BY sequence_number"
    ).fetchall()
    assert rows == [
        (STREAM, SHARD, "5001", 0, every_byte, "not_json",
         "not JSON at byte 0", ARRIVED),
        # A NUL in a message is written as an escape: text cannot hold it.
        (STREAM, SHARD, "5002", 4, b"\xa0\x00", "invalid_utf8",
         "invalid start byte\\x00 here", ARRIVED),
        (STREAM, SHARD, "5003", 0, b"", "bad_field",
         "usedPowerKw: not a number", ARRIVED),
    ]


def test_reject_without_metadata_is_filed_at_the_batch_checkpoint(db, sink):
    lease = add_lease(db)

    sink.write(batch(lease, [Reject(Reason.NOT_JSON, "x", b"x")],
                     seq="777"))

    assert db.execute(
        "SELECT shard_id, sequence_number, sub_sequence_number, arrived_at "
        "FROM ingest_rejects"
    ).fetchall() == [(SHARD, "777", None, None)]


def test_batch_spanning_two_days_lands_in_both_partitions(db, sink):
    lease = add_lease(db)
    late = datetime(2025, 12, 1, 23, 59, 59, tzinfo=timezone.utc)
    early = datetime(2025, 12, 2, 0, 0, 0, tzinfo=timezone.utc)

    sink.write(batch(lease, [reading("ven-1", late), reading("ven-1", early)]))

    assert db.execute(
        "SELECT tableoid::regclass::text, timestamp FROM ven_telemetry "
        "ORDER BY timestamp"
    ).fetchall() == [
        ("ven_telemetry_p20251201", late),
        ("ven_telemetry_p20251202", early),
    ]
    assert db.execute(
        "SELECT tableoid::regclass::text, count(*) FROM ven_load_samples "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall() == [
        ("ven_load_samples_p20251201", 2),
        ("ven_load_samples_p20251202", 2),
    ]
