"""``status`` against LocalStack and a real worker process: the live lag is
above zero while a backlog drains and zero once it is stored, and the
counts status reports match the rows in the tables."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from tests.e2e.worker_harness import (  # noqa: F401 (start_worker fixture)
    WAIT_DEADLINE_S,
    WorkerProcess,
    put_readings,
    reading,
    start_worker,
    stored_count,
    wait_until,
    worker_env,
)
from worker.config import Settings
from worker.ops.model import LAG_LIVE, READING, UNLEASED
from worker.ops.status import collect_status

BACKLOG = 3000
# Small pages make the worker drain the backlog in many commits, so status
# sees it part-way (GetRecords pages of 10,000 would store it in one go).
PAGE_RECORDS = 50


def ops_settings(pg_url, schema, endpoint, stream) -> Settings:
    return Settings(stream_name=stream, database_url=pg_url,
                    pg_schema=schema, kinesis_endpoint=endpoint)


def test_status_lag_while_a_backlog_drains(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client, tmp_path):
    stream = make_stream(2)
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            stream)
    sent = put_readings(kinesis_client, stream,
                        [reading(ven, step) for step in range(BACKLOG // 50)
                         for ven in range(50)])

    # Before any worker: no lease rows, and the lag measured at the start
    # of each shard (TRIM_HORIZON) shows the backlog.
    before = collect_status(settings)
    assert before.kinesis_reachable and before.stream_status == "ACTIVE"
    assert {s.state for s in before.shards} == {UNLEASED}
    assert max(s.millis_behind_latest for s in before.shards) > 0

    env = worker_env(pg_url, migrated_schema, localstack_endpoint, stream)
    env["MAX_RECORDS"] = str(PAGE_RECORDS)
    worker = WorkerProcess("w-lag", env, tmp_path)
    try:
        seen = []  # (records stored per status, largest live lag)
        pause = threading.Event()
        deadline = time.monotonic() + WAIT_DEADLINE_S
        while time.monotonic() < deadline:
            now = collect_status(settings)
            lags = [s.millis_behind_latest for s in now.shards
                    if s.state == READING and s.lag_source == LAG_LIVE]
            if lags:
                seen.append((now.totals.records_stored, max(lags)))
            if (now.totals.records_stored == BACKLOG and len(lags) == 2
                    and max(lags) == 0):
                break
            pause.wait(0.05)
        else:
            raise AssertionError(f"backlog not drained; last seen {seen[-3:]}")

        behind = [lag for stored, lag in seen if stored < BACKLOG]
        assert behind and max(behind) > 0, seen
        final = now
        assert final.totals.records_stored == BACKLOG
        assert stored_count(pg_url, migrated_schema) == len(sent)
        assert final.totals.duplicates_dropped == 0
        for shard in final.shards:
            assert shard.owner == "w-lag"
            assert shard.live_millis_behind == 0
            assert shard.newest_reading_at is not None
        assert [w.leases_held for w in final.workers] == [2]
        assert sum(s.vens_latest_here for s in final.shards) == 50
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
        worker.stop()


def test_status_command_json_with_localstack(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client, start_worker):
    stream = make_stream(1)
    put_readings(kinesis_client, stream, [reading(1, step)
                                          for step in range(20)])
    worker = start_worker("w-json", stream)
    wait_until(lambda: stored_count(pg_url, migrated_schema) == 20,
               "20 readings stored")
    env = {**os.environ, "DATABASE_URL": pg_url,
           "PG_SCHEMA": migrated_schema, "STREAM_NAME": stream,
           "KINESIS_ENDPOINT": localstack_endpoint,
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}

    done = subprocess.run([sys.executable, "-m", "worker", "status", "--json"],
                          env=env, capture_output=True, text=True,
                          timeout=120)

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["kinesis_reachable"] is True
    assert data["stream_status"] == "ACTIVE"
    [shard] = data["shards"]
    assert shard["records_stored"] == 20
    assert shard["lag_source"] == LAG_LIVE
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_status_of_a_stream_that_does_not_exist_says_so_and_exits_1(
        pg_url, migrated_schema, localstack_endpoint):
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": pg_url,
           "PG_SCHEMA": migrated_schema,
           "KINESIS_ENDPOINT": localstack_endpoint,
           "STREAM_NAME": "no-such-stream-7c1e", "LOG_LEVEL": "WARNING"}
    result = subprocess.run([sys.executable, "-m", "worker", "status"],
                            env=env, capture_output=True, text=True,
                            timeout=120)

    assert result.returncode == 1
    assert "'no-such-stream-7c1e' does not exist" in result.stdout
