"""Client cost: CPU per record in the worker process, where it goes, and the
records per second one worker process stores into PostgreSQL.

Run:  .venv/bin/python bench/bench_client.py [--records 100000] [--shards 4]

The feed is bench/fake_kinesis.py in its own process, answering GetRecords
with 10,000-record pages of realistic readings, so the emulator is not what
is measured. Everything is measured with both GetRecords paths: boto3's
parser, and worker/kinesis/fast_records.py (the default).

1. Components, in this process, on one canned page: botocore's parse alone
   (the bar to beat), the fast parse alone, a whole GetRecords call each
   way, and decode_page. CPU time (time.process_time), best of ROUNDS.
2. Pipeline: one thread fetching, decoding and storing pages as a shard
   consumer does. Unprofiled: CPU and wall time of each stage. Then again
   under pyinstrument, split by concern (bench/profile_split.py).
3. The worker process itself (bench/worker_proc.py, built exactly as
   ``python -m worker run``): the backlog is held back until the worker
   holds every lease, then released; the worker's own CPU time (from /proc)
   and the wall time until the lease table counts every record stored.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import botocore.parsers
import psycopg
from psycopg.copy import Copy, FileWriter
from pyinstrument import Profiler

from fake_kinesis import STREAM, FakeStream
from profile_split import split, table
from support import (
    FakeEndpoint,
    Progress,
    busy_cores,
    database_url,
    drop_schema,
    fresh_schema,
    load_average,
    machine_cpu,
    start_worker,
    wait_for_leases,
    watch_drain,
    worker_env,
)
from worker.db.connect import connect
from worker.kinesis.client import KinesisClient, make_boto3_client
from worker.kinesis.fast_records import parse_page
from worker.records import DecodePolicy, Reading
from worker.runtime.decode_page import decode_page
from worker.sink import Batch, LeaseToken, PostgresSink
from worker.sink.rows import (
    SAMPLE_COPY_COLUMNS,
    SAMPLE_COPY_TYPES,
    TELEMETRY_COPY_COLUMNS,
    TELEMETRY_COPY_TYPES,
    all_sample_rows,
    telemetry_rows,
    use_c_bytea_dumper,
    write_rows,
)

COMMAND = ".venv/bin/python bench/bench_client.py"

PAGE_RECORDS = 10_000
SHARD = "shardId-000000000000"

# Best of several rounds: the machine is shared, and the least disturbed
# round is the closest to what the code costs.
ROUNDS = 5

# Records per second one process should store: the target.
TARGET_RECORDS_PER_S = 50_000

# The worker is given this long after taking its leases before the backlog
# is released, so its consumers are running and idle when the clock starts.
SETTLE_S = 2.0

# pyinstrument's sampling interval: fine enough for thousands of samples
# per page, coarse enough to cost the profiled code little.
PROFILE_INTERVAL_S = 0.0005

# The worker's progress is sampled this often; it bounds how precisely the
# end of the drain is seen.
DONE_POLL_S = 0.1


def canned_body() -> bytes:
    """The exact bytes of one 10,000-record GetRecords answer."""
    stream = FakeStream(1, PAGE_RECORDS, gated=False)
    return stream.get_records({"ShardIterator": "0:0",
                               "Limit": PAGE_RECORDS})


def best_cpu_us(fn, records: int, rounds: int = ROUNDS) -> float:
    """CPU µs per record of ``fn()``, best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best * 1e6 / records


def measure_components(url: str, endpoint_url: str,
                       body: bytes) -> dict[str, float]:
    boto = make_boto3_client(endpoint_url, "us-east-1")
    shape = boto.meta.service_model.operation_model("GetRecords").output_shape
    parser = botocore.parsers.create_parser("json")
    answer = {"body": body, "headers": {}, "status_code": 200}
    records = parse_page(body).records
    policy = DecodePolicy()
    via_boto3 = KinesisClient(boto, fast_get_records=False)
    via_fast = KinesisClient(boto)
    n = len(records)
    items, _ = decode_page(records, SHARD, policy)
    rows = [(n, r) for n, r in enumerate(items, 1) if isinstance(r, Reading)]
    conn = psycopg.connect(url)
    use_c_bytea_dumper(conn)

    def copy_rows() -> None:
        # The sink's binary COPY rows, built by psycopg into a file that
        # discards them, so only the client's formatting is timed.
        for types, columns, built in (
            (TELEMETRY_COPY_TYPES, TELEMETRY_COPY_COLUMNS,
             telemetry_rows(rows)),
            (SAMPLE_COPY_TYPES, SAMPLE_COPY_COLUMNS, all_sample_rows(rows)),
        ):
            with open(os.devnull, "wb") as out, Copy(
                conn.cursor(), binary=True, writer=FileWriter(out)
            ) as copy:
                copy.set_types(types)
                write_rows(copy, built, columns, types)

    return {
        "botocore_parse": best_cpu_us(lambda: parser.parse(answer, shape), n),
        "fast_parse": best_cpu_us(lambda: parse_page(body), n),
        "call_boto3": best_cpu_us(
            lambda: via_boto3.get_records("0:0", PAGE_RECORDS), n),
        "call_fast": best_cpu_us(
            lambda: via_fast.get_records("0:0", PAGE_RECORDS), n),
        "decode_page": best_cpu_us(
            lambda: decode_page(records, SHARD, policy), n, rounds=3),
        "copy_format": best_cpu_us(copy_rows, n, rounds=3),
    }


class Stages:
    """CPU and wall seconds per stage of the pipeline."""

    def __init__(self):
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self._mark = (time.process_time(), time.perf_counter())

    def lap(self, stage: str) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu - self._mark[0]
        self.wall[stage] = self.wall.get(stage, 0.0) + wall - self._mark[1]
        self._mark = (cpu, wall)


def run_pipeline(url: str, endpoint_url: str, pages: int, fast: bool,
                 profile: bool) -> dict:
    """One thread doing a shard consumer's work: fetch, decode, store."""
    schema = fresh_schema(url)
    try:
        with connect(url, schema, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO shard_leases (stream_name, shard_id, "
                "starting_hash_key, ending_hash_key, owner, lease_counter) "
                "VALUES (%s, %s, '0', '1', 'bench', 1)", (STREAM, SHARD))
        lease = LeaseToken(STREAM, SHARD, "bench", 1)
        client = KinesisClient(make_boto3_client(endpoint_url, "us-east-1"),
                               fast_get_records=fast)
        sink = PostgresSink(connect(url, schema))
        policy = DecodePolicy()
        iterator = client.get_shard_iterator(STREAM, SHARD, "TRIM_HORIZON")
        profiler = Profiler(interval=PROFILE_INTERVAL_S) if profile else None
        records = 0
        if profiler:
            profiler.start()
        stages = Stages()
        for _ in range(pages):
            page = client.get_records(iterator, PAGE_RECORDS)
            stages.lap("fetch")
            items, last = decode_page(page.records, SHARD, policy)
            stages.lap("decode")
            sink.write(Batch(lease, items, last, page.millis_behind_latest))
            stages.lap("store")
            iterator = page.next_iterator
            records += len(page.records)
        if profiler:
            profiler.stop()
        sink.close()
        result = {"records": records,
                  "cpu_us": {k: v * 1e6 / records
                             for k, v in stages.cpu.items()},
                  "wall_us": {k: v * 1e6 / records
                              for k, v in stages.wall.items()}}
        if profiler:
            result["profile"] = table(
                split(profiler.last_session.root_frame()), records)
        return result
    finally:
        drop_schema(url, schema)


def measure_worker(url: str, records: int, shards: int, path: str,
                   logs: Path) -> dict[str, float]:
    """The worker process draining a released backlog."""
    schema = fresh_schema(url)
    endpoint = FakeEndpoint(shards, records, gated=True)
    log_path = logs / f"worker-{path}-{schema}.log"
    worker = progress = None
    try:
        env = worker_env(url, schema, endpoint.url, STREAM, f"bench-{path}")
        worker = start_worker(env, log_path, get_records=path)
        progress = Progress(url, schema)
        wait_for_leases(worker, progress, shards, log_path)
        threading.Event().wait(SETTLE_S)
        cpu_before = worker.cpu_seconds()
        feed_before = endpoint.stats()["cpu_s"]
        machine_before = machine_cpu()
        started = time.perf_counter()
        endpoint.release()
        samples = watch_drain(worker, progress, records, started,
                              DONE_POLL_S, log_path)
        seconds = samples[-1].t
        machine = busy_cores(machine_before, machine_cpu())
        cpu = worker.cpu_seconds() - cpu_before
        feed_cpu = endpoint.stats()["cpu_s"] - feed_before
        return {"seconds": seconds, "records_per_s": records / seconds,
                "cpu_us": cpu * 1e6 / records,
                "cpu_share": cpu / seconds, "machine_cores": machine,
                "feed_cpu_us": feed_cpu * 1e6 / records}
    finally:
        if worker is not None:
            worker.stop()
        if progress is not None:
            progress.close()
        endpoint.stop()
        drop_schema(url, schema)


def run(records: int, shards: int, rounds: int, profile_pages: int,
        url: str) -> dict:
    print(f"command: {COMMAND} --records {records} --shards {shards} "
          f"--rounds {rounds} --profile-pages {profile_pages}")
    print(f"load average at start: {load_average()}")
    body = canned_body()
    figures: dict = {"records": records, "shards": shards,
                     "page_bytes": len(body)}

    endpoint = FakeEndpoint(1, PAGE_RECORDS)
    try:
        components = measure_components(url, endpoint.url, body)
    finally:
        endpoint.stop()
    figures["components"] = components
    print(f"\none page of {PAGE_RECORDS:,} records ({len(body):,} bytes), "
          f"CPU µs per record, best of {ROUNDS}:")
    for name, us in components.items():
        print(f"  {name:<16} {us:8.2f}")
    print(f"  botocore parse / fast parse = "
          f"{components['botocore_parse'] / components['fast_parse']:.1f}x")

    endpoint = FakeEndpoint(1, PAGE_RECORDS * profile_pages)
    try:
        for path, fast in (("boto3", False), ("fast", True)):
            plain = run_pipeline(url, endpoint.url, profile_pages, fast,
                                 profile=False)
            figures[f"pipeline_{path}"] = plain
            print(f"\npipeline, GetRecords via {path}: one thread, "
                  f"{plain['records']:,} records, µs per record:")
            for stage in plain["cpu_us"]:
                print(f"  {stage:<7} CPU {plain['cpu_us'][stage]:7.1f}   "
                      f"wall {plain['wall_us'][stage]:7.1f}")
            profiled = run_pipeline(url, endpoint.url, profile_pages, fast,
                                    profile=True)
            figures[f"profile_{path}"] = profiled["profile"]
            print("  profiled (pyinstrument, wall µs per record, profiler "
                  "overhead included):")
            for label, us, share in profiled["profile"]:
                print(f"  {us:7.1f} µs {share:6.1%}  {label}")
    finally:
        endpoint.stop()

    logs = Path(tempfile.mkdtemp(prefix="bench_client_"))
    best: dict[str, dict] = {}
    for round_no in range(1, rounds + 1):
        for path in ("boto3", "fast"):
            got = measure_worker(url, records, shards, path, logs)
            print(f"  round {round_no} worker via {path:<5} "
                  f"{got['records_per_s']:9,.0f} records/s  "
                  f"{got['cpu_us']:6.1f} CPU µs/record  "
                  f"(worker {got['cpu_share']:.2f} cores, machine "
                  f"{got['machine_cores']:.2f} of 2 busy; feed "
                  f"{got['feed_cpu_us']:.1f} µs/record)  "
                  f"load {load_average()}", flush=True)
            if path not in best or got["seconds"] < best[path]["seconds"]:
                best[path] = got
    figures["worker"] = best
    figures["load_end"] = load_average()
    fast, slow = best["fast"], best["boto3"]
    print(f"\nworker process, best of {rounds}: fast path "
          f"{fast['records_per_s']:,.0f} records/s, "
          f"{fast['cpu_us']:.1f} CPU µs/record; boto3 path "
          f"{slow['records_per_s']:,.0f} records/s, "
          f"{slow['cpu_us']:.1f} CPU µs/record")
    print(f"records/s fast / boto3 = "
          f"{fast['records_per_s'] / slow['records_per_s']:.2f}; target "
          f">= {TARGET_RECORDS_PER_S:,} records/s per process: "
          f"{'PASS' if fast['records_per_s'] >= TARGET_RECORDS_PER_S else 'MISS'}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile-pages", type=int, default=5)
    parser.add_argument("--url", default=database_url())
    args = parser.parse_args(argv)
    run(args.records, args.shards, args.rounds, args.profile_pages, args.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
