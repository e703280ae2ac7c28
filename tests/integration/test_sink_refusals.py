"""Values Python let through but PostgreSQL refuses: the reading becomes a
DATABASE_REFUSED reject with the database's message, every other reading of
the batch is stored, and the checkpoint moves past all of them."""

import collections
import random
import string

import pytest

from sink_support import (  # noqa: F401  (sink is a fixture)
    add_lease,
    batch,
    count,
    lease_row,
    meta,
    note_calls,
    reading,
    sample,
    sink,
)
from worker.records.model import Reason
from worker.sink import load


def _refused(db) -> list[tuple]:
    return db.execute(
        "SELECT sequence_number, reason_code, raw_data, error_detail "
        "FROM ingest_rejects ORDER BY sequence_number"
    ).fetchall()


def test_priority_out_of_int_range_is_refused_alone(db, sink):
    lease = add_lease(db)
    bad = reading("ven-bad", 0, record=meta("20"),
                  samples=[sample("ok"), sample("huge", priority=2**31)])
    items = [reading(f"ven-{i}", 0, record=meta(str(10 + i)))
             for i in range(5)]
    items.insert(3, bad)

    result = sink.write(batch(lease, items, seq="20"))

    assert result.stored == 5
    assert result.rejected == collections.Counter(
        {Reason.DATABASE_REFUSED: 1}
    )
    assert db.execute(
        "SELECT ven_id FROM ven_telemetry ORDER BY ven_id"
    ).fetchall() == [(f"ven-{i}",) for i in range(5)]
    # None of the refused reading's samples stay behind.
    assert count(db, "ven_load_samples") == 10
    [(seq, reason, raw, detail)] = _refused(db)
    assert (seq, reason) == ("20", "database_refused")
    assert raw == bad.raw_payload.encode("utf-8")
    assert "out of range for type integer" in detail
    assert "priority" in detail
    row = lease_row(db)
    assert (row["records_stored"], row["records_rejected"]) == (5, 1)
    assert row["checkpoint_sequence"] == "20"


def test_a_repeat_of_a_refused_reading_is_stored_in_its_place(db, sink):
    # A device re-sending a corrected copy of a reading: the copies before
    # it are refused, so it is not a duplicate of anything stored.
    lease = add_lease(db)
    huge = [sample("huge", priority=2**31)]
    items = [
        reading("ven-1", 0, record=meta("10"), samples=huge),
        reading("ven-1", 0, record=meta("11"), samples=huge,
                used_power_kw=1.0),
        reading("ven-1", 0, record=meta("12"), used_power_kw=7.5),
        reading("ven-1", 0, record=meta("13"), used_power_kw=9.0),
        reading("ven-2", 0, record=meta("14")),
    ]

    result = sink.write(batch(lease, items, seq="14"))

    assert (result.stored, result.duplicates) == (2, 1)
    assert result.rejected == collections.Counter(
        {Reason.DATABASE_REFUSED: 2})
    assert db.execute(
        "SELECT ven_id, used_power_kw FROM ven_telemetry ORDER BY ven_id"
    ).fetchall() == [("ven-1", 7.5), ("ven-2", items[4].used_power_kw)]
    assert count(db, "ven_load_samples") == 4
    assert [(seq, raw) for seq, _, raw, _ in _refused(db)] == [
        ("10", items[0].raw_payload.encode()),
        ("11", items[1].raw_payload.encode())]
    row = lease_row(db)
    assert (row["records_stored"], row["duplicates_dropped"],
            row["records_rejected"]) == (2, 1, 2)


def test_copies_of_a_refused_payload_are_refused_alike_without_a_copy_each(
        db, sink, monkeypatch):
    # A device re-sending a bad reading in a loop: one COPY finds the
    # refusal, and every identical copy shares it.
    copies = note_calls(monkeypatch, load, "_copy_once", len)
    db.execute("ALTER TABLE ven_telemetry ADD CONSTRAINT used_power_sane "
               "CHECK (used_power_kw < 1000)")
    lease = add_lease(db)
    items = [reading("ven-1", 0, record=meta(str(n)), used_power_kw=5000.0)
             for n in range(10, 40)]
    items.append(reading("ven-1", 0, record=meta("40"), used_power_kw=2.0))

    result = sink.write(batch(lease, items, seq="40"))

    assert (result.stored, result.duplicates) == (1, 0)
    assert result.rejected == collections.Counter(
        {Reason.DATABASE_REFUSED: 30})
    refused = _refused(db)
    assert [seq for seq, *_ in refused] == [str(n) for n in range(10, 40)]
    assert {(raw, detail) for _, _, raw, detail in refused} == {
        (items[0].raw_payload.encode(), refused[0][3])}
    assert "used_power_sane" in refused[0][3]
    assert db.execute("SELECT used_power_kw FROM ven_telemetry"
                      ).fetchall() == [(2.0,)]
    assert copies == [1, 1]


def test_a_copy_tried_in_place_of_a_refused_one_may_be_a_duplicate(db, sink):
    db.execute("ALTER TABLE ven_telemetry ADD CONSTRAINT used_power_sane "
               "CHECK (used_power_kw < 1000)")
    lease = add_lease(db)
    sink.write(batch(lease, [reading("ven-1", 0, record=meta("1"))],
                     seq="1"))
    # The batch above met no duplicate, so this one copies without probing:
    # the CHECK refuses the first copy before its key is looked at, and the
    # second copy, tried in its place, meets the stored reading.
    items = [reading("ven-1", 0, record=meta("2"), used_power_kw=5000.0),
             reading("ven-1", 0, record=meta("3"), used_power_kw=9.0)]

    result = sink.write(batch(lease, items, seq="3"))

    assert (result.stored, result.duplicates) == (0, 1)
    assert result.rejected == collections.Counter(
        {Reason.DATABASE_REFUSED: 1})
    assert db.execute("SELECT used_power_kw FROM ven_telemetry"
                      ).fetchall() == [(reading("ven-1", 0).used_power_kw,)]
    row = lease_row(db)
    assert (row["records_stored"], row["duplicates_dropped"],
            row["records_rejected"]) == (1, 1, 1)
    assert row["checkpoint_sequence"] == "3"


def test_check_constraint_added_by_operator_refuses_only_offenders(db, sink):
    db.execute(
        "ALTER TABLE ven_telemetry ADD CONSTRAINT used_power_sane "
        "CHECK (used_power_kw < 1000)"
    )
    lease = add_lease(db)
    items = [
        reading(f"ven-{i:02d}", 0, record=meta(f"{100 + i}"),
                used_power_kw=5000.5 if i in (0, 7, 12) else 2.0)
        for i in range(13)
    ]

    result = sink.write(batch(lease, items, seq="112"))

    assert result.stored == 10
    assert result.rejected[Reason.DATABASE_REFUSED] == 3
    refused = _refused(db)
    assert [r[0] for r in refused] == ["100", "107", "112"]
    assert all("used_power_sane" in r[3] for r in refused)
    assert [r[2] for r in refused] == [
        items[i].raw_payload.encode("utf-8") for i in (0, 7, 12)
    ]
    assert count(db, "ven_telemetry") == 10
    assert count(db, "ven_load_samples") == 20


@pytest.mark.parametrize(
    "fields, words",
    [
        # Longer than the column allows.
        ({"ven_id": "v" * 129}, "too long"),
        # raw_payload must be JSON that jsonb takes.
        ({"raw_payload": '{"venId": "x", "a": "\\u0000"}'}, "unicode"),
        ({"raw_payload": "not json"}, "json"),
        # A NUL character inside text.
        ({"event_id": "evt\x00a"}, "0x00"),
        # A lone surrogate cannot be UTF-8 (found in the client, before
        # anything is sent).
        ({"raw_payload": '{"label": "\ud800"}'}, "utf-8"),
        # Too big for an index entry (eventId is indexed); random, so
        # compression cannot shrink it under the limit.
        ({"event_id": "".join(random.Random(7).choices(
            string.ascii_letters, k=6000))}, "index row size"),
        # A wrong Python type in a number field reaches PostgreSQL as one bad
        # field, never as extra fields or rows.
        ({"used_power_kw": "1\t2\n3"}, "double precision"),
    ],
)
def test_value_postgres_refuses_becomes_a_reject(db, sink, fields, words):
    lease = add_lease(db)
    ven_id = fields.pop("ven_id", "ven-bad")
    bad = reading(ven_id, 0, record=meta("2"), **fields)
    items = [reading("ven-1", 0, record=meta("1")), bad,
             reading("ven-3", 0, record=meta("3"))]

    result = sink.write(batch(lease, items, seq="3"))

    assert result.stored == 2
    assert result.rejected == collections.Counter(
        {Reason.DATABASE_REFUSED: 1}
    )
    [(seq, _, raw, detail)] = _refused(db)
    assert seq == "2"
    assert raw == bad.raw_payload.encode("utf-8", "surrogatepass")
    assert words in detail.lower()
    assert db.execute(
        "SELECT ven_id FROM ven_telemetry ORDER BY ven_id"
    ).fetchall() == [("ven-1",), ("ven-3",)]
    assert lease_row(db)["checkpoint_sequence"] == "3"


def test_ven_id_that_cannot_be_a_query_parameter_is_refused(db, sink):
    lease = add_lease(db)
    bad = reading("ven-0\x0001", 0, record=meta("2"))

    result = sink.write(batch(lease, [reading("ven-1", 0), bad], seq="2"))

    assert result.stored == 1
    assert result.rejected == collections.Counter(
        {Reason.DATABASE_REFUSED: 1}
    )
    [(_, _, raw, detail)] = _refused(db)
    assert raw == bad.raw_payload.encode("utf-8")
    assert "NUL" in detail


def test_every_reading_refused_still_moves_checkpoint(db, sink):
    db.execute(
        "ALTER TABLE ven_load_samples ADD CONSTRAINT no_samples CHECK (false)"
    )
    lease = add_lease(db)
    items = [reading(f"ven-{i}", 0, record=meta(str(i))) for i in range(4)]

    result = sink.write(batch(lease, items, seq="3"))

    assert result.stored == 0
    assert result.rejected[Reason.DATABASE_REFUSED] == 4
    assert count(db, "ven_telemetry") == 0
    assert count(db, "ingest_rejects") == 4
    assert lease_row(db)["checkpoint_sequence"] == "3"
