"""``redrive`` on real PostgreSQL: rejects written by the real sink are decoded
again under looser settings; those that now decode become rows exactly once,
their reject rows go, and the lease counters still balance."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from sink_support import (  # noqa: F401  (sink is a fixture)
    ARRIVED,
    STREAM,
    add_lease,
    batch,
    count,
    lease_row,
    meta,
    sink,
)
from worker import cli
from worker.config import Settings
from worker.db.connect import connect
from worker.errors import ConfigError
from worker.kinesis.kpl import MAGIC as KPL_MAGIC
from worker.ops import redrive as redrive_module
from worker.ops.redrive import redrive
from worker.records import decode_record
from worker.sink import redrive as redrive_sink
from worker.sink.load import load_readings

# Two hours ahead of its arrival: rejected under the default one-hour skew.
AHEAD = ARRIVED + timedelta(hours=2)
LOOSE_SKEW_S = 3 * 3600.0
SHARD_A, SHARD_B = "shardId-000000000001", "shardId-000000000002"


def payload(ven_id: str, at, loads: int = 2) -> bytes:
    return orjson.dumps({
        "venId": ven_id, "timestamp": at.timestamp(), "usedPowerKw": 2.5,
        "loads": [{"loadId": f"l{k}", "currentPowerKw": 0.5 + k}
                  for k in range(loads)],
    })


NOT_JSON = b"\x00\x01 not json"
ON_TIME = payload("ven-on-time", ARRIVED)
EARLY = payload("ven-early", AHEAD)


@pytest.fixture
def settings(pg_url, migrated_schema) -> Settings:
    return Settings(stream_name=STREAM, database_url=pg_url,
                    pg_schema=migrated_schema)


@pytest.fixture
def rejected(db, sink):  # noqa: F811  (the fixture imported above)
    """One committed batch, as a worker writes it: 1 reading stored and 4
    rejects (the early reading twice, not-JSON, and a copy of the stored
    reading filed as a decoder error, as a decoder bug would have)."""
    lease = add_lease(db)
    records = [ON_TIME, EARLY, EARLY, NOT_JSON]
    items = [decode_record(data, meta(str(1000 + n)))
             for n, data in enumerate(records)]
    result = sink.write(batch(lease, items, seq="1003"))
    assert (result.stored, sum(result.rejected.values())) == (1, 3)
    db.execute(
        "INSERT INTO ingest_rejects (stream_name, shard_id, sequence_number, "
        "raw_data, reason_code, error_detail) "
        "VALUES (%s, %s, '999', %s, 'decoder_error', 'a bug')",
        (STREAM, meta().shard_id, ON_TIME))
    db.execute("UPDATE shard_leases SET records_rejected = 4")
    return 5  # records sent


def loosened(settings: Settings) -> Settings:
    """The settings after an operator raised the skew limit."""
    return replace(settings, max_future_skew_s=LOOSE_SKEW_S)


def reject_reasons(db) -> list[str]:
    return [r for (r,) in db.execute(
        "SELECT reason_code FROM ingest_rejects ORDER BY reason_code")]


def balance(db) -> tuple[int, int, int]:
    row = lease_row(db)
    return (row["records_stored"], row["duplicates_dropped"],
            row["records_rejected"])


def test_redrive_stores_what_now_decodes_once_and_keeps_the_rest(
        db, settings, rejected, capsys):
    loose = loosened(settings)

    assert redrive(loose) == 0

    assert db.execute(
        "SELECT ven_id, timestamp, raw_payload->>'venId' FROM ven_telemetry "
        "ORDER BY ven_id").fetchall() == [
            ("ven-early", AHEAD, "ven-early"),
            ("ven-on-time", ARRIVED, "ven-on-time")]
    assert count(db, "ven_load_samples") == 4
    assert db.execute(
        "SELECT last_reading_at FROM ven_last_seen WHERE ven_id = 'ven-early'"
    ).fetchone()[0] == AHEAD
    # The early reading stored once and its copy counted as a duplicate;
    # the decoder-error copy of a stored reading counted as a duplicate;
    # the not-JSON record kept as it was.
    assert reject_reasons(db) == ["not_json"]
    assert db.execute("SELECT raw_data FROM ingest_rejects").fetchone()[0] \
        == NOT_JSON
    assert balance(db) == (2, 2, 1)
    assert sum(balance(db)) == rejected

    out = capsys.readouterr().out
    assert "redrive of 4 reject(s)" in out
    assert "Still rejected, by the reason they fail with now: not_json 1" \
        in out


def test_a_second_redrive_changes_nothing(db, settings, rejected):
    loose = loosened(settings)
    redrive(loose)
    before = (count(db, "ven_telemetry"), count(db, "ven_load_samples"),
              reject_reasons(db), balance(db))

    assert redrive(loose) == 0

    assert (count(db, "ven_telemetry"), count(db, "ven_load_samples"),
            reject_reasons(db), balance(db)) == before


def test_under_the_same_settings_only_the_bug_copy_leaves(db, settings,
                                                          rejected):
    assert redrive(settings) == 0

    assert count(db, "ven_telemetry") == 1
    assert reject_reasons(db) == ["not_json", "timestamp_out_of_range",
                                  "timestamp_out_of_range"]
    assert balance(db) == (1, 1, 3)


def test_reason_filter_touches_only_that_reason(db, settings, rejected):
    loose = loosened(settings)

    redrive(loose, reasons=["decoder_error"])

    assert count(db, "ven_telemetry") == 1
    assert reject_reasons(db) == ["not_json", "timestamp_out_of_range",
                                  "timestamp_out_of_range"]


def test_shard_filter_skips_other_shards(db, settings, rejected):
    loose = loosened(settings)

    redrive(loose, shard="shardId-000000000999")

    assert len(reject_reasons(db)) == 4


def test_dry_run_stores_and_deletes_nothing(db, settings, rejected, capsys):
    loose = loosened(settings)

    assert redrive(loose, dry_run=True) == 0

    assert count(db, "ven_telemetry") == 1
    assert len(reject_reasons(db)) == 4
    assert balance(db) == (1, 0, 4)
    out = capsys.readouterr().out
    assert "redrive of 4 reject(s) (dry run)" in out
    assert "Dry run: nothing was stored or deleted." in out


def test_an_unknown_reason_code_is_one_clear_error(settings):
    with pytest.raises(ConfigError, match="unknown reason code nope"):
        redrive(settings, reasons=["nope"])


def test_cli_redrive_exits_0_and_2(db, pg_url, settings, rejected, capsys):
    common = ["--database-url", pg_url, "--pg-schema", settings.pg_schema,
              "--stream-name", STREAM]

    assert cli.main(["redrive", "--reason", "nope", *common]) == 2
    assert "unknown reason code nope" in capsys.readouterr().err

    assert cli.main(["redrive", "--max-future-skew-s", "10800", *common]) == 0
    assert reject_reasons(db) == ["not_json"]


def test_rejects_another_redrive_holds_are_left_to_it(db, pg_url, settings,
                                                      rejected, capsys):
    decoder_bug = db.execute(
        "SELECT id FROM ingest_rejects WHERE reason_code = 'decoder_error'"
    ).fetchone()[0]
    with connect(pg_url, settings.pg_schema) as other:
        other.execute("SELECT 1 FROM ingest_rejects WHERE id = %s FOR UPDATE",
                      (decoder_bug,))

        assert redrive(loosened(settings)) == 0

    assert reject_reasons(db) == ["decoder_error", "not_json"]
    assert count(db, "ven_telemetry") == 2
    assert balance(db) == (2, 1, 2)
    out = capsys.readouterr().out
    assert "LEFT TO ANOTHER RUN" in out


def test_a_kpl_aggregate_kept_whole_is_left_alone(db, settings, capsys):
    aggregate = KPL_MAGIC + b"\x0a\x03key-that-never-parsed"
    db.execute(
        "INSERT INTO ingest_rejects (stream_name, shard_id, sequence_number, "
        "raw_data, reason_code, error_detail) "
        "VALUES (%s, %s, '7', %s, 'bad_aggregate', 'md5 mismatch')",
        (STREAM, meta().shard_id, aggregate))

    assert redrive(settings) == 0

    assert db.execute("SELECT raw_data FROM ingest_rejects").fetchone()[0] \
        == aggregate
    assert "bad_aggregate 1" in capsys.readouterr().out


def insert_reject(db, raw: bytes, shard: str = SHARD_A, stream: str = STREAM,
                  arrived=ARRIVED, reason: str = "decoder_error",
                  rejected_at=None) -> None:
    db.execute(
        "INSERT INTO ingest_rejects (stream_name, shard_id, sequence_number, "
        "raw_data, reason_code, error_detail, arrived_at, rejected_at) "
        "VALUES (%s, %s, '1', %s, %s, 'kept', %s, COALESCE(%s, now()))",
        (stream, shard, raw, reason, arrived, rejected_at))


def counters(db, shard: str) -> tuple[int, int, int]:
    row = lease_row(db, shard)
    return (row["records_stored"], row["duplicates_dropped"],
            row["records_rejected"])


def test_a_repeat_of_a_refused_reading_is_stored_in_its_place(
        db, settings, monkeypatch):
    # In one transaction with the rest of the shard's page.
    transactions = []

    def load_and_note(cur, readings, probe_first):
        transactions.append(
            cur.execute("SELECT txid_current()").fetchone()[0])
        return load_readings(cur, readings, probe_first)

    monkeypatch.setattr(redrive_sink, "load_readings", load_and_note)
    add_lease(db, shard=SHARD_A)
    db.execute("UPDATE shard_leases SET records_rejected = 2")
    db.execute("ALTER TABLE ven_telemetry ADD CONSTRAINT sane_power "
               "CHECK (used_power_kw < 1000)")
    refused = orjson.dumps({"venId": "v1", "timestamp": ARRIVED.timestamp(),
                            "usedPowerKw": 5000.0})
    insert_reject(db, refused)
    insert_reject(db, payload("v1", ARRIVED))

    assert redrive(settings) == 0

    assert db.execute("SELECT ven_id, used_power_kw FROM ven_telemetry"
                      ).fetchall() == [("v1", 2.5)]
    assert db.execute("SELECT raw_data FROM ingest_rejects").fetchall() == [
        (refused,)]
    assert counters(db, SHARD_A) == (1, 0, 1)
    assert len(transactions) == 1


def test_pages_and_shards_each_move_their_own_counters(db, settings,
                                                      monkeypatch):
    monkeypatch.setattr(redrive_module, "PAGE_ROWS", 1)
    for shard, rejected in ((SHARD_A, 2), (SHARD_B, 2)):
        add_lease(db, shard=shard)
        db.execute("UPDATE shard_leases SET records_rejected = %s "
                   "WHERE shard_id = %s", (rejected, shard))
    insert_reject(db, payload("a1", ARRIVED), SHARD_A)
    insert_reject(db, payload("b1", ARRIVED), SHARD_B)
    insert_reject(db, payload("a1", ARRIVED), SHARD_A)
    insert_reject(db, NOT_JSON, SHARD_B, reason="not_json")
    insert_reject(db, payload("x1", ARRIVED), SHARD_A, stream="other-stream")

    assert redrive(settings) == 0

    assert [v for (v,) in db.execute(
        "SELECT ven_id FROM ven_telemetry ORDER BY ven_id")] == ["a1", "b1"]
    assert counters(db, SHARD_A) == (1, 1, 0)
    assert counters(db, SHARD_B) == (1, 0, 1)
    assert db.execute(
        "SELECT stream_name, reason_code FROM ingest_rejects ORDER BY id"
    ).fetchall() == [(STREAM, "not_json"), ("other-stream", "decoder_error")]


def test_a_reject_without_arrival_time_is_judged_as_of_its_rejection(
        db, settings):
    rejected_at = datetime.now(timezone.utc) - timedelta(hours=3)
    two_hours_ahead = payload("v1", rejected_at + timedelta(hours=2))
    insert_reject(db, two_hours_ahead, arrived=None, rejected_at=rejected_at,
                  reason="timestamp_out_of_range")

    assert redrive(settings) == 0

    assert count(db, "ven_telemetry") == 0
    assert reject_reasons(db) == ["timestamp_out_of_range"]


def test_a_page_cut_short_by_its_text_budget_skips_nothing(db, settings,
                                                           rejected,
                                                           monkeypatch):
    monkeypatch.setattr(redrive_module, "PAGE_DECODED_CHARS", 1)

    assert redrive(loosened(settings)) == 0

    assert count(db, "ven_telemetry") == 2
    assert reject_reasons(db) == ["not_json"]
    assert balance(db) == (2, 2, 1)
