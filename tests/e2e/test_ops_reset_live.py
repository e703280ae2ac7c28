"""``reset`` against LocalStack and a running worker: a rewind is re-read,
every re-read record is counted as a duplicate and none is stored twice; a
position that would skip records never stored is refused."""

import signal
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from tests.e2e.worker_harness import (  # noqa: F401 (start_worker fixture)
    put_readings,
    reading,
    start_worker,
    stored_count,
    wait_until,
)
from worker.config import Settings
from worker.errors import ConfigError
from worker.ops.reset import reset
from worker.ops.status import collect_status

READINGS = 600


def ops_settings(pg_url, schema, endpoint, stream) -> Settings:
    return Settings(stream_name=stream, database_url=pg_url,
                    pg_schema=schema, kinesis_endpoint=endpoint)


def counters(pg_url, schema, stream) -> tuple[int, int]:
    """(records stored, duplicates dropped) over the stream's leases."""
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            f"SELECT coalesce(sum(records_stored), 0), "
            f"coalesce(sum(duplicates_dropped), 0) FROM \"{schema}\"."
            "shard_leases WHERE stream_name = %s", (stream,)).fetchone()


def distinct_readings(pg_url, schema) -> int:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            f'SELECT count(DISTINCT (ven_id, "timestamp")) '
            f'FROM "{schema}".ven_telemetry').fetchone()[0]


def put_batch(client, stream, first_step: int, steps: int) -> list:
    return put_readings(client, stream, [
        reading(ven, step) for step in range(first_step, first_step + steps)
        for ven in range(30)])


def test_reset_all_to_a_timestamp_rereads_as_duplicates(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client, start_worker, capsys):
    stream = make_stream(2)
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            stream)
    # LocalStack runs on this machine: its arrival times use this clock.
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    sent = put_batch(kinesis_client, stream, 0, READINGS // 30)
    worker = start_worker("w-reset", stream)
    wait_until(lambda: counters(pg_url, migrated_schema, stream)
               == (len(sent), 0), f"{len(sent)} readings stored")

    assert reset(settings, all_shards=True, to_timestamp=start) == 0

    out = capsys.readouterr().out
    assert f"reset 2 shard(s) of stream {stream}" in out
    wait_until(lambda: counters(pg_url, migrated_schema, stream)
               == (len(sent), len(sent)),
               f"{len(sent)} readings re-read as duplicates")
    assert stored_count(pg_url, migrated_schema) == len(sent)
    assert distinct_readings(pg_url, migrated_schema) == len(sent)
    status = collect_status(settings)
    assert status.totals.duplicates_dropped == len(sent)
    assert all(s.owner == "w-reset" and s.live_millis_behind == 0
               for s in status.shards)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_reset_one_shard_after_a_sequence_number(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client, start_worker):
    stream = make_stream(1)
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            stream)
    sent = put_batch(kinesis_client, stream, 0, 10)
    worker = start_worker("w-seq", stream)
    wait_until(lambda: counters(pg_url, migrated_schema, stream)
               == (len(sent), 0), f"{len(sent)} readings stored")
    with psycopg.connect(pg_url) as conn:
        sequences = [row[0] for row in conn.execute(
            f'SELECT sequence_number FROM "{migrated_schema}".ven_telemetry '
            "ORDER BY sequence_number::numeric").fetchall()]
        shard = conn.execute(
            f'SELECT shard_id FROM "{migrated_schema}".shard_leases '
            "WHERE stream_name = %s", (stream,)).fetchone()[0]
    keep = 100  # the first 100 records stay behind the new position

    assert reset(settings, shard=shard, to_sequence=sequences[keep - 1]) == 0

    wait_until(lambda: counters(pg_url, migrated_schema, stream)
               == (len(sent), len(sent) - keep),
               f"{len(sent) - keep} readings re-read as duplicates")
    assert distinct_readings(pg_url, migrated_schema) == len(sent)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def _hand_made_lease(pg_url, schema, stream, client) -> str:
    """A lease row for the stream's only shard, no checkpoint yet, as a
    worker's first listing makes it (no worker runs in these tests)."""
    [shard] = client.list_shards(StreamName=stream)["Shards"]
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".shard_leases (stream_name, shard_id, '
            "starting_hash_key, ending_hash_key) VALUES (%s, %s, %s, %s)",
            (stream, shard["ShardId"],
             shard["HashKeyRange"]["StartingHashKey"],
             shard["HashKeyRange"]["EndingHashKey"]))
    return shard["ShardId"]


def _lease_row(pg_url, schema, stream) -> tuple:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            f'SELECT owner, lease_counter, checkpoint_sequence, '
            f'reset_to_timestamp FROM "{schema}".shard_leases '
            "WHERE stream_name = %s", (stream,)).fetchone()


def test_reset_refuses_to_skip_records_never_stored(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client):
    stream = make_stream(1)
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            stream)
    shard = _hand_made_lease(pg_url, migrated_schema, stream, kinesis_client)
    put_batch(kinesis_client, stream, 0, 2)
    before = _lease_row(pg_url, migrated_schema, stream)
    later = datetime.now(timezone.utc)
    *_, last = kinesis_client.get_records(
        ShardIterator=kinesis_client.get_shard_iterator(
            StreamName=stream, ShardId=shard,
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"])["Records"]

    with pytest.raises(ConfigError, match="would skip records never stored"):
        reset(settings, all_shards=True, to_timestamp=later)
    with pytest.raises(ConfigError, match="would skip records never stored"):
        reset(settings, shard=shard, to_sequence=last["SequenceNumber"])
    with pytest.raises(ConfigError, match="could not confirm sequence"):
        reset(settings, shard=shard, to_sequence="123")

    assert _lease_row(pg_url, migrated_schema, stream) == before


def test_reset_to_before_the_first_record_is_allowed_without_a_worker(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client, capsys):
    stream = make_stream(1)
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            stream)
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    _hand_made_lease(pg_url, migrated_schema, stream, kinesis_client)
    put_batch(kinesis_client, stream, 0, 2)

    assert reset(settings, all_shards=True, to_timestamp=start) == 0

    owner, counter, checkpoint, reset_to = _lease_row(
        pg_url, migrated_schema, stream)
    assert (owner, counter, checkpoint) == (None, 1, None)
    assert reset_to == start
    assert "reset 1 shard(s)" in capsys.readouterr().out
