"""``status`` over lease rows, workers and readings written here by hand, on
real PostgreSQL, with Kinesis unreachable (a closed local port): states,
per-worker counts, newest readings, the concentration warning, and output
for people and for scripts.

Expiry and heartbeat ages are set relative to the database's clock, so
nothing here waits for time to pass.
"""

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from worker.config import Settings
from worker.errors import ConfigError
from worker.ops.model import (
    ENDED,
    EXPIRED,
    FREE,
    LAG_RECORDED,
    READING,
    WAITING,
)
from worker.ops.status import collect_status, status
from worker.sink.partitions import create_partitions

STREAM = "ops-status"
# Nothing listens on port 9 (discard): connections are refused at once.
UNREACHABLE = "http://127.0.0.1:9"
T0 = datetime(2025, 12, 1, tzinfo=timezone.utc)
SEQ = "49650000000000000000000000000000000000000000000000000001"


def sid(n: int) -> str:
    return f"shardId-{n:012d}"


def add_lease(db, shard: str, *, owner: str | None = None,
              expires_in_s: float | None = None, checkpoint: str | None = None,
              parents: tuple[str, ...] = (), counter: int = 1,
              stored: int = 0, duplicates: int = 0, rejected: int = 0,
              lag_ms: int | None = None, reset_to: datetime | None = None,
              stream: str = STREAM) -> None:
    db.execute(
        "INSERT INTO shard_leases (stream_name, shard_id, parent_shard_ids, "
        "starting_hash_key, ending_hash_key, owner, lease_counter, "
        "lease_expires_at, checkpoint_sequence, records_stored, "
        "duplicates_dropped, records_rejected, millis_behind_latest, "
        "last_commit_at, reset_to_timestamp) "
        "VALUES (%s, %s, %s, '0', '340282366920938463463374607431768211455', "
        "%s, %s, now() + make_interval(secs => %s), %s, %s, %s, %s, %s, "
        "CASE WHEN %s::text IS NULL THEN NULL ELSE now() END, %s)",
        (stream, shard, list(parents), owner, counter, expires_in_s,
         checkpoint, stored, duplicates, rejected, lag_ms, checkpoint,
         reset_to))


def add_worker(db, worker_id: str, heartbeat_age_s: float = 0.0,
               selector: str = "all") -> None:
    db.execute(
        "INSERT INTO ingest_workers (worker_id, stream_name, shard_selector, "
        "heartbeat_at) VALUES (%s, %s, %s, "
        "now() - make_interval(secs => %s))",
        (worker_id, STREAM, selector, heartbeat_age_s))


def add_reading(db, ven: str, at: datetime, shard: str) -> None:
    db.execute(
        'INSERT INTO ven_telemetry (ven_id, "timestamp", raw_payload, '
        "shard_id, sequence_number) VALUES (%s, %s, '{}', %s, '1')",
        (ven, at, shard))
    db.execute(
        "INSERT INTO ven_last_seen (ven_id, last_reading_at, last_seen_at) "
        "VALUES (%s, %s, now()) ON CONFLICT (ven_id) DO UPDATE SET "
        "last_reading_at = GREATEST(ven_last_seen.last_reading_at, "
        "EXCLUDED.last_reading_at)",
        (ven, at))


@pytest.fixture
def settings(pg_url, migrated_schema) -> Settings:
    return Settings(stream_name=STREAM, database_url=pg_url,
                    pg_schema=migrated_schema, kinesis_endpoint=UNREACHABLE)


def by_id(collected) -> dict:
    return {shard.shard_id: shard for shard in collected.shards}


def test_status_states_from_lease_rows(db, settings):
    add_lease(db, sid(0), owner="w1", expires_in_s=30, checkpoint=SEQ,
              counter=4, lag_ms=1500)
    add_lease(db, sid(1), owner="w2", expires_in_s=-5, checkpoint=SEQ)
    add_lease(db, sid(2))
    add_lease(db, sid(3), checkpoint="SHARD_END")
    add_lease(db, sid(4), parents=(sid(2),))           # parent not ended
    add_lease(db, sid(5), parents=(sid(3),))           # parent ended
    add_lease(db, sid(6), parents=("shardId-000000000099",))  # parent gone
    add_lease(db, sid(7), owner="w1", expires_in_s=30, stream="other")

    shards = by_id(collect_status(settings))

    assert {k: s.state for k, s in shards.items()} == {
        sid(0): READING, sid(1): EXPIRED, sid(2): FREE, sid(3): ENDED,
        sid(4): WAITING, sid(5): FREE, sid(6): FREE}
    reading = shards[sid(0)]
    assert (reading.owner, reading.lease_counter, reading.checkpoint) == (
        "w1", 4, SEQ)
    assert 0 < reading.lease_expires_in_s <= 30
    assert shards[sid(1)].lease_expires_in_s < 0
    assert shards[sid(2)].lease_expires_in_s is None
    assert shards[sid(4)].parent_shard_ids == [sid(2)]


def test_status_with_kinesis_unreachable_shows_recorded_lag(db, settings):
    add_lease(db, sid(0), owner="w1", expires_in_s=30, checkpoint=SEQ,
              lag_ms=1500)
    add_lease(db, sid(1))

    collected = collect_status(settings)

    assert collected.kinesis_reachable is False
    assert collected.stream_status is None
    shards = by_id(collected)
    assert shards[sid(0)].millis_behind_latest == 1500
    assert shards[sid(0)].lag_source == LAG_RECORDED
    assert shards[sid(0)].live_millis_behind is None
    assert shards[sid(1)].millis_behind_latest is None
    assert collected.totals.max_millis_behind == 1500
    assert any(w.startswith(f"Kinesis not reachable at {UNREACHABLE}")
               for w in collected.warnings)


def test_status_counts_leases_per_worker(db, settings):
    add_worker(db, "w1")
    add_worker(db, "w2", heartbeat_age_s=3600)
    add_worker(db, "w-idle", selector="1/2")
    add_lease(db, sid(0), owner="w1", expires_in_s=30)
    add_lease(db, sid(1), owner="w1", expires_in_s=30)
    add_lease(db, sid(2), owner="w2", expires_in_s=-60)
    add_lease(db, sid(3), owner="w1", expires_in_s=30, checkpoint="SHARD_END")
    add_lease(db, sid(4), owner="w-gone", expires_in_s=30)

    collected = collect_status(settings)
    workers = {w.worker_id: w for w in collected.workers}

    assert set(workers) == {"w1", "w2", "w-idle", "w-gone"}
    assert (workers["w1"].leases_held, workers["w1"].leases_expired) == (2, 0)
    assert (workers["w2"].leases_held, workers["w2"].leases_expired) == (0, 1)
    assert workers["w-idle"].leases_held == 0
    assert workers["w-idle"].selector == "1/2"
    assert workers["w-gone"].leases_held == 1
    assert workers["w-gone"].heartbeat_age_s is None
    assert [w.live for w in (workers["w1"], workers["w2"], workers["w-idle"],
                             workers["w-gone"])] == [True, False, True, False]
    assert collected.totals.live_workers == 2
    assert collected.totals.leases_held == 3


def test_status_totals_add_up_the_lease_counters(db, settings):
    add_lease(db, sid(0), stored=100, duplicates=7, rejected=2)
    add_lease(db, sid(1), stored=50, duplicates=1, rejected=0)
    add_lease(db, sid(2), checkpoint="SHARD_END", stored=1000)

    totals = collect_status(settings).totals

    assert (totals.records_stored, totals.duplicates_dropped,
            totals.records_rejected) == (1150, 8, 2)
    assert (totals.open_shards, totals.ended_shards) == (2, 1)


def test_status_newest_reading_per_shard(db, settings):
    create_partitions(db, [T0.date(), (T0 + timedelta(days=1)).date()])
    add_lease(db, sid(0))
    add_lease(db, sid(1))
    add_lease(db, sid(2))
    add_reading(db, "ven-a", T0 + timedelta(minutes=1), sid(0))
    add_reading(db, "ven-a", T0 + timedelta(minutes=2), sid(0))
    add_reading(db, "ven-b", T0 + timedelta(hours=25), sid(0))
    add_reading(db, "ven-c", T0 + timedelta(minutes=5), sid(1))

    collected = collect_status(settings)
    shards = by_id(collected)

    assert shards[sid(0)].newest_reading_at == T0 + timedelta(hours=25)
    assert shards[sid(0)].vens_latest_here == 2
    assert shards[sid(1)].newest_reading_at == T0 + timedelta(minutes=5)
    assert shards[sid(1)].vens_latest_here == 1
    assert shards[sid(2)].newest_reading_at is None
    age = (collected.checked_at - shards[sid(1)].newest_reading_at)
    assert shards[sid(1)].newest_reading_age_s == pytest.approx(
        age.total_seconds())
    assert collected.totals.newest_reading_at == T0 + timedelta(hours=25)


def test_status_shows_a_pending_reset(db, settings):
    at = datetime(2025, 12, 1, 12, tzinfo=timezone.utc)
    add_lease(db, sid(0), reset_to=at)
    add_lease(db, sid(1), checkpoint=SEQ, reset_to=at)  # superseded

    shards = by_id(collect_status(settings))

    assert shards[sid(0)].pending_reset_to == at
    assert shards[sid(1)].pending_reset_to is None


def test_status_warns_when_one_open_shard_holds_the_traffic(db, settings):
    add_lease(db, sid(0), checkpoint="SHARD_END", stored=50_000)
    add_lease(db, sid(1), parents=(sid(0),), stored=9_700)
    add_lease(db, sid(2), parents=(sid(0),), stored=200)
    add_lease(db, sid(3), stored=100)

    warnings = collect_status(settings).warnings

    concentrated = [w for w in warnings if "concentrated" in w]
    assert len(concentrated) == 1
    assert sid(1) in concentrated[0]
    assert "97% of the records stored on the 3 open shards" in concentrated[0]
    assert "constant partition key" in concentrated[0]
    assert "${venId}" in concentrated[0] and "${newuuid()}" in concentrated[0]


def test_status_warns_when_every_ven_reports_through_one_shard(db, settings):
    create_partitions(db, [T0.date()])
    add_lease(db, sid(0))
    add_lease(db, sid(1))
    for n in range(10):
        add_reading(db, f"ven-{n}", T0 + timedelta(seconds=n), sid(1))

    warnings = collect_status(settings).warnings

    assert any("the newest reading of 10 of 10 VENs came through it" in w
               for w in warnings)


@pytest.mark.parametrize("stored", [
    [300, 250, 260, 240],   # spread evenly
    [90, 5, 5],             # lopsided, but too few records to judge
    [5000],                 # only one open shard: nothing to spread over
])
def test_status_does_not_warn_of_concentration(db, settings, stored):
    for n, count in enumerate(stored):
        add_lease(db, sid(n), stored=count)

    warnings = collect_status(settings).warnings

    assert not any("concentrated" in w for w in warnings)


def test_status_warns_when_no_worker_is_live(db, settings):
    add_worker(db, "w-old", heartbeat_age_s=3600)
    add_lease(db, sid(0))

    warnings = collect_status(settings).warnings

    assert any("nothing is reading the stream" in w for w in warnings)


def test_status_json_parses(db, settings, capsys):
    add_worker(db, "w1")
    add_lease(db, sid(0), owner="w1", expires_in_s=30, checkpoint=SEQ,
              stored=10, lag_ms=250)

    assert status(settings, as_json=True) == 0

    data = json.loads(capsys.readouterr().out)
    assert data["stream_name"] == STREAM
    assert data["kinesis_reachable"] is False
    [shard] = data["shards"]
    assert shard["shard_id"] == sid(0)
    assert shard["state"] == READING
    assert shard["checkpoint"] == SEQ
    assert shard["millis_behind_latest"] == 250
    assert shard["lag_source"] == LAG_RECORDED
    assert data["workers"][0]["leases_held"] == 1
    assert data["totals"]["records_stored"] == 10
    datetime.fromisoformat(data["checked_at"])
    assert data["warnings"]


def test_status_table_names_shards_workers_and_warnings(db, settings,
                                                        capsys):
    add_worker(db, "w1")
    add_lease(db, sid(0), owner="w1", expires_in_s=30, checkpoint=SEQ,
              lag_ms=1500)
    add_lease(db, sid(1), checkpoint="SHARD_END")

    assert status(settings) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    shard_line = next(line for line in lines if line.startswith(sid(0)))
    assert READING in shard_line and "w1" in shard_line
    assert "…" + SEQ[-12:] in shard_line
    assert "1.5s*" in shard_line  # recorded lag is marked
    assert any(line.startswith(sid(1)) and ENDED in line for line in lines)
    assert any(line.startswith("w1 ") for line in lines)
    assert "WARNING: Kinesis not reachable" in out


def test_status_without_the_tables_is_one_clear_error(pg_url, schema_name):
    settings = Settings(stream_name=STREAM, database_url=pg_url,
                        pg_schema=schema_name, kinesis_endpoint=UNREACHABLE)

    with pytest.raises(ConfigError, match="run `ven-worker migrate` first"):
        collect_status(settings)


def test_status_command_prints_json_and_exits_0(db, pg_url, migrated_schema):
    add_lease(db, sid(0), stored=3)
    env = {**os.environ, "DATABASE_URL": pg_url,
           "PG_SCHEMA": migrated_schema, "STREAM_NAME": STREAM,
           "KINESIS_ENDPOINT": UNREACHABLE, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test"}

    done = subprocess.run([sys.executable, "-m", "worker", "status", "--json"],
                          env=env, capture_output=True, text=True,
                          timeout=120)

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["shards"][0]["records_stored"] == 3
