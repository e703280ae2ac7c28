"""The checker itself, on tables written by hand: it passes a correct end
state and names each kind of loss, doubling and stray row. Real PostgreSQL,
no LocalStack."""

from datetime import date, datetime, timedelta, timezone

import pytest

from tests.faults.checker import check
from tests.faults.ledger import Expect, Ledger, Outgoing
from worker.sink.partitions import create_partitions

STREAM = "checker-stream"
SHARD = "shardId-000000000000"
AT = datetime(2025, 12, 1, tzinfo=timezone.utc)


def _ledger() -> Ledger:
    """Three readings (the third put twice on purpose) and one reject."""
    ledger = Ledger()
    for n, ven in enumerate(["ven-a", "ven-b", "ven-c", "ven-c"]):
        expect = Expect.stored("reading", ven, AT, samples=0)
        ledger.add(SHARD, str(100 + n), Outgoing(b"{}", ven, (expect,)))
    expect = Expect.rejected("nan", "non_finite_number")
    ledger.add(SHARD, "200", Outgoing(b"NaN", "k", (expect,)))
    return ledger


def _store(db, ven: str, seq: str) -> None:
    db.execute(
        "INSERT INTO ven_telemetry (ven_id, \"timestamp\", raw_payload, "
        "shard_id, sequence_number, sub_sequence_number) "
        "VALUES (%s, %s, '{}', %s, %s, 0)", (ven, AT, SHARD, seq))


def _reject(db, seq: str, reason: str = "non_finite_number",
            raw: bytes = b"NaN") -> None:
    db.execute(
        "INSERT INTO ingest_rejects (stream_name, shard_id, sequence_number, "
        "sub_sequence_number, raw_data, reason_code, error_detail) "
        "VALUES (%s, %s, %s, 0, %s, %s, 'by hand')",
        (STREAM, SHARD, seq, raw, reason))


def _totals(db, stored: int, duplicates: int, rejected: int) -> None:
    db.execute(
        "INSERT INTO shard_leases (stream_name, shard_id, starting_hash_key, "
        "ending_hash_key, records_stored, duplicates_dropped, "
        "records_rejected) VALUES (%s, %s, '0', '1', %s, %s, %s)",
        (STREAM, SHARD, stored, duplicates, rejected))


@pytest.fixture
def correct(db):
    """The tables as a correct run leaves them, but for the lease totals
    (each test writes its own)."""
    create_partitions(db, [date(2025, 12, 1)])
    for ven, seq in (("ven-a", "100"), ("ven-b", "101"), ("ven-c", "102")):
        _store(db, ven, seq)
    _reject(db, "200")
    return db


def _check(pg_url, schema):
    return check("by hand", pg_url, schema, STREAM, _ledger().records())


def test_checker_passes_a_correct_end_state(pg_url, migrated_schema, correct):
    _totals(correct, stored=3, duplicates=1, rejected=1)

    report = _check(pg_url, migrated_schema)

    assert report.ok, report.unexpected
    assert (report.sent, report.stored, report.duplicates_sent) == (5, 3, 1)
    assert report.rejected == {"non_finite_number": 1}


def test_checker_counts_a_missing_reading_and_reject_as_lost(
        pg_url, migrated_schema, correct):
    correct.execute("DELETE FROM ven_telemetry WHERE ven_id = 'ven-b'")
    correct.execute("DELETE FROM ingest_rejects")
    _totals(correct, stored=2, duplicates=1, rejected=0)

    report = _check(pg_url, migrated_schema)

    assert report.lost == 2
    assert not report.ok


def test_checker_counts_a_record_processed_twice_as_doubled(
        pg_url, migrated_schema, correct):
    _reject(correct, "200")  # the same position rejected again
    _totals(correct, stored=3, duplicates=3, rejected=2)  # two re-reads

    report = _check(pg_url, migrated_schema)

    assert report.doubled == 3
    assert report.lost == 0


def test_checker_reports_stray_rows_wrong_reasons_and_bad_totals(
        pg_url, migrated_schema, correct):
    _store(correct, "ven-nobody", "300")
    correct.execute("UPDATE ingest_rejects SET reason_code = 'not_json', "
                    "raw_data = 'x'")
    _totals(correct, stored=3, duplicates=1, rejected=1)

    report = _check(pg_url, migrated_schema)

    problems = "\n".join(report.unexpected)
    assert "rows nobody sent" in problems
    assert "wrong reason" in problems
    assert "raw bytes differ" in problems
    assert "lease rows count 3 stored, the table holds 4" in problems
    assert (report.lost, report.doubled) == (0, 0)


def test_checker_reports_fewer_duplicates_than_repeats_sent(
        pg_url, migrated_schema, correct):
    _totals(correct, stored=3, duplicates=0, rejected=1)

    report = _check(pg_url, migrated_schema)

    assert report.unexpected == [
        "1 repeats sent but only 0 counted as duplicates"]


def test_epoch_key_is_exact_to_the_microsecond():
    moment = AT + timedelta(microseconds=1)
    key = Expect.stored("reading", "v", moment, 0).key

    assert key == ("v", 1764547200_000_001)
