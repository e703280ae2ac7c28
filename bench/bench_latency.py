"""Latency: put-to-row p50 and p99 at a steady rate of readings per second,
with the worker on its default idle interval.

Run:  .venv/bin/python bench/bench_latency.py [--rate 500] [--seconds 60]

The stream is bench/fake_kinesis.py (4 shards), because LocalStack here
accepts only about 450 records/s of PutRecords, below the rate asked for; the
fake endpoint answers PutRecords and GetRecords at once, so what is measured
is the worker: its polling pace, decode, and the fenced COPY and commit.

A producer puts readings in batches every PUT_INTERVAL_S (stamped with the
time they are sent), and keeps each record's shard and sequence number from
the PutRecords answer. A watcher reads the lease table every POLL_S: a
record is stored once its shard's checkpoint reaches its sequence number
(the checkpoint moves in the same transaction as the rows). Put-to-row is
then from just before the PutRecords call to the first look that saw the
checkpoint past the record, so it is late by up to POLL_S, never early.
"""

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from fake_kinesis import STREAM
from readings import reading, ven_id
from support import (
    FakeEndpoint,
    Progress,
    database_url,
    drop_schema,
    fresh_schema,
    load_average,
    start_worker,
    wait_for_leases,
    wait_until,
    worker_env,
)
from worker.kinesis.client import make_boto3_client

COMMAND = ".venv/bin/python bench/bench_latency.py"
SHARDS = 4

# A batch every 20 ms: close to one PutRecord per message, as the IoT rule
# sends them, without 500 HTTP calls a second from one Python thread.
PUT_INTERVAL_S = 0.02

# How often the lease table is read: the latency figures are late by up to
# this much. The table has one row per shard, so reading it costs nothing.
POLL_S = 0.02

# Kept short of "never": once the producer stops, every record must be seen
# stored within this long or the run is reported as failed.
SETTLE_DEADLINE_S = 120

TARGET_P99_S = 2.0


class Ledger:
    """Records put and not yet seen stored, per shard, in put order."""

    def __init__(self):
        self._pending: dict[str, collections.deque] = collections.defaultdict(
            collections.deque)
        self._lock = threading.Lock()
        self.latencies: list[float] = []
        self.sent = 0

    def put(self, shard_id: str, sequence: str, sent_at: float) -> None:
        with self._lock:
            self._pending[shard_id].append((int(sequence), sent_at))
            self.sent += 1

    def committed(self, shard_id: str, checkpoint: str, seen_at: float) -> None:
        with self._lock:
            queue = self._pending[shard_id]
            reached = int(checkpoint)
            while queue and queue[0][0] <= reached:
                _, sent_at = queue.popleft()
                self.latencies.append(seen_at - sent_at)

    def waiting(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._pending.values())


def produce(endpoint_url: str, rate: int, seconds: float, ledger: Ledger,
            stop: threading.Event) -> float:
    """Put ``rate`` readings a second for ``seconds``; returns the rate
    actually achieved."""
    client = make_boto3_client(endpoint_url, "us-east-1")
    per_batch = max(1, round(rate * PUT_INTERVAL_S))
    started = time.perf_counter()
    batches = 0
    i = 0
    while not stop.is_set():
        due = started + batches * PUT_INTERVAL_S
        if due - started >= seconds:
            break
        stop.wait(max(0.0, due - time.perf_counter()))
        sent_at = time.time()
        entries = []
        for _ in range(per_batch):
            entries.append({"Data": reading(i, at=round(sent_at, 3)),
                            "PartitionKey": ven_id(i)})
            i += 1
        answer = client.put_records(StreamName=STREAM, Records=entries)
        for result in answer["Records"]:
            ledger.put(result["ShardId"], result["SequenceNumber"], sent_at)
        batches += 1
    return ledger.sent / (time.perf_counter() - started)


def watch(url: str, schema: str, ledger: Ledger,
          stop: threading.Event) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            rows = conn.execute(
                f'SELECT shard_id, checkpoint_sequence FROM "{schema}".'
                f"shard_leases WHERE checkpoint_sequence ~ '^[0-9]+$'"
            ).fetchall()
            seen_at = time.time()
            for shard_id, checkpoint in rows:
                ledger.committed(shard_id, checkpoint, seen_at)
            stop.wait(POLL_S)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def stored_rows(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            f'SELECT count(*) FROM "{schema}".ven_telemetry').fetchone()[0]


def run(rate: int, seconds: float, url: str) -> dict:
    print(f"command: {COMMAND} --rate {rate} --seconds {seconds:g}")
    print(f"load average at start: {load_average()}")
    schema = fresh_schema(url)
    endpoint = FakeEndpoint(SHARDS)
    log_path = Path(tempfile.mkdtemp(prefix="bench_latency_")) / "worker.log"
    worker = progress = None
    stop = threading.Event()
    ledger = Ledger()
    watcher = threading.Thread(target=watch, args=(url, schema, ledger, stop),
                               daemon=True)
    try:
        env = worker_env(url, schema, endpoint.url, STREAM, "bench-latency")
        worker = start_worker(env, log_path)
        progress = Progress(url, schema)
        wait_for_leases(worker, progress, SHARDS, log_path)
        watcher.start()
        achieved = produce(endpoint.url, rate, seconds, ledger, stop)
        wait_until(lambda: ledger.waiting() == 0,
                   "every record put to be stored", SETTLE_DEADLINE_S)
        stop.set()
        watcher.join()
        rows = stored_rows(url, schema)
    finally:
        stop.set()
        if worker is not None:
            worker.stop()
        if progress is not None:
            progress.close()
        endpoint.stop()
        drop_schema(url, schema)
    if rows != ledger.sent:
        raise RuntimeError(f"{ledger.sent} readings put, {rows} rows stored")

    lat = ledger.latencies
    figures = {"rate": rate, "achieved_rate": achieved, "readings": len(lat),
               "p50_s": percentile(lat, 50), "p90_s": percentile(lat, 90),
               "p99_s": percentile(lat, 99), "max_s": max(lat),
               "load_end": load_average()}
    print(f"{len(lat):,} readings put at {achieved:,.0f}/s (asked {rate}/s) "
          f"over {seconds:g} s; all {rows:,} stored")
    print(f"put-to-row: p50 {figures['p50_s']:.3f} s, p90 "
          f"{figures['p90_s']:.3f} s, p99 {figures['p99_s']:.3f} s, max "
          f"{figures['max_s']:.3f} s (seen up to {POLL_S * 1000:.0f} ms late)")
    verdict = "PASS" if figures["p99_s"] < TARGET_P99_S else "MISS"
    print(f"target p99 < {TARGET_P99_S:g} s: {verdict}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=500,
                        help="readings per second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--url", default=database_url())
    args = parser.parse_args(argv)
    run(args.rate, args.seconds, args.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
