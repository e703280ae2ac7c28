"""Helpers for tests that run real worker processes against LocalStack and
PostgreSQL: start and signal workers, write readings, wait for outcomes, and
check that every reading is stored exactly once."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import psycopg
import pytest

# Short leases make failover quick in tests; a third of this is the renewal
# cycle. Deadlines below are generous bounds for a loaded 2-core machine, not
# performance assertions.
TEST_LEASE_DURATION_S = 3
WAIT_DEADLINE_S = 120
BASE_TS = 1764547200  # 2025-12-01T00:00:00Z


def wait_until(predicate, what: str, deadline_s: float = WAIT_DEADLINE_S):
    """Poll ``predicate`` until it returns a truthy value; fail naming
    ``what`` when the deadline passes."""
    pause = threading.Event()
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        pause.wait(0.25)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class WorkerProcess:
    """``python -m worker run`` as a subprocess with its log in a file."""

    def __init__(self, name: str, env: dict, log_dir: Path, shards="all"):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        full_env = {**os.environ, **env, "WORKER_ID": name, "SHARDS": shards}
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = WAIT_DEADLINE_S) -> int:
        code = self.process.wait(timeout)
        self._log.close()
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def worker_env(pg_url: str, schema: str, endpoint: str, stream: str) -> dict:
    return {
        "DATABASE_URL": pg_url,
        "PG_SCHEMA": schema,
        "KINESIS_ENDPOINT": endpoint,
        "STREAM_NAME": stream,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "LEASE_DURATION_S": str(TEST_LEASE_DURATION_S),
        "IDLE_INTERVAL_S": "0.2",
        "DISCOVERY_INTERVAL_S": "2",
        "METRICS_PORT": "0",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "INFO",
    }


def reading(ven: int, step: int) -> dict:
    return {"venId": f"ven-{ven:04d}", "timestamp": BASE_TS + step * 5,
            "usedPowerKw": round(1.0 + ven + step / 100, 3),
            "loads": [{"loadId": "hvac1", "currentPowerKw": 0.5}]}


def put_readings(client, stream: str, payloads: list[dict]) -> list:
    """Put payloads (partition key = venId, as with a `${venId}` rule);
    returns their (ven_id, timestamp) keys. Retries failed entries."""
    pending = [{"Data": orjson.dumps(p), "PartitionKey": p["venId"]}
               for p in payloads]
    while pending:
        chunk, pending = pending[:500], pending[500:]
        result = client.put_records(StreamName=stream, Records=chunk)
        failed = [rec for rec, res in zip(chunk, result["Records"])
                  if "ErrorCode" in res]
        pending = failed + pending
    return [(p["venId"], p["timestamp"]) for p in payloads]


class Producer(threading.Thread):
    """Writes a steady trickle of unique readings until stopped."""

    def __init__(self, client, stream: str, vens: int = 20,
                 per_round: int = 20, pause_s: float = 0.1):
        super().__init__(daemon=True)
        self._client, self._stream = client, stream
        self._vens, self._per_round, self._pause_s = vens, per_round, pause_s
        self.sent: list = []
        self._halt = threading.Event()
        self._step = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                batch = []
                for _ in range(self._per_round):
                    ven = self._step % self._vens
                    batch.append(reading(ven, self._step // self._vens))
                    self._step += 1
                self.sent += put_readings(self._client, self._stream, batch)
                self._halt.wait(self._pause_s)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> list:
        self._halt.set()
        self.join(60)
        if self.error:
            raise self.error
        return self.sent


def stored_count(pg_url: str, schema: str) -> int:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            f'SELECT count(*) FROM "{schema}".ven_telemetry').fetchone()[0]


def lease_owners(pg_url: str, schema: str, stream: str) -> dict[str, int]:
    """Live (unexpired) leases per owner, for shards not yet ended."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            f'SELECT owner, count(*) FROM "{schema}".shard_leases '
            "WHERE stream_name = %s AND owner IS NOT NULL "
            "AND lease_expires_at > now() "
            "AND checkpoint_sequence IS DISTINCT FROM 'SHARD_END' "
            "GROUP BY owner", (stream,)).fetchall()
    return dict(rows)


def assert_exactly_once(pg_url: str, schema: str, sent: list) -> None:
    """Every reading sent is stored once, nothing else is stored, and no
    record was processed twice (the duplicate counter stays at zero: a
    re-read after a crash or a lease move would show up there)."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            f'SELECT ven_id, extract(epoch FROM "timestamp")::bigint '
            f'FROM "{schema}".ven_telemetry').fetchall()
        dups, rejects = conn.execute(
            f'SELECT coalesce(sum(duplicates_dropped), 0), '
            f'coalesce(sum(records_rejected), 0) '
            f'FROM "{schema}".shard_leases').fetchone()
    stored = sorted((v, int(t)) for v, t in rows)
    expected = sorted(sent)
    assert len(expected) == len(set(expected)), "test sent a reading twice"
    missing = set(expected) - set(stored)
    extra = set(stored) - set(expected)
    assert not missing, f"{len(missing)} readings lost, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} unexpected readings stored"
    assert len(stored) == len(expected)
    assert dups == 0, f"{dups} records were processed twice"
    assert rejects == 0


@pytest.fixture
def start_worker(pg_url, migrated_schema, localstack_endpoint, tmp_path):
    started = []

    def start(name: str, stream: str, shards: str = "all") -> WorkerProcess:
        env = worker_env(pg_url, migrated_schema, localstack_endpoint, stream)
        proc = WorkerProcess(name, env, tmp_path, shards)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
