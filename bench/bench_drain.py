"""Drain: the time for the worker to store a LocalStack stream's backlog,
against a bare GetRecords loop reading the same records and doing nothing.

Run:  .venv/bin/python bench/bench_drain.py [--readings 50000] [--shards 4]
          [--endpoint http://127.0.0.1:4566] [--plot bench/drain.png]

LOCALSTACK_ENDPOINT, when set, is the default endpoint. A fresh stream is
pre-loaded once per run (PutRecords in batches of 500; LocalStack takes a
few hundred records a second, so 50,000 take minutes), then read:

1. bare read: one thread per shard, GetRecords (10,000 a call, no pause)
   from TRIM_HORIZON until the shard's records are all read; timed from the
   first call to the last record.
2. the worker: ``python -m worker run``, default settings, fresh schema;
   timed from its start to the moment the lease table counts every record
   stored (so the worker's start-up and lease taking are included).
3. bare read again, so a drift in LocalStack's speed during the run shows.

The worker is compared with the faster of the two bare reads.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import psycopg

from readings import reading, ven_id
from support import (
    DEFAULT_LOCALSTACK,
    Progress,
    busy_cores,
    database_url,
    drop_schema,
    fresh_schema,
    leases_taken_at,
    load_average,
    machine_cpu,
    shown_path,
    start_worker,
    watch_drain,
    worker_env,
)
from worker.kinesis.client import make_boto3_client

COMMAND = ".venv/bin/python bench/bench_drain.py"

# PutRecords takes at most 500 records a call.
PUT_BATCH = 500

# The pre-load is not what is measured: give LocalStack, slow under load,
# a minute per call and let botocore retry, instead of failing the run.
PRELOAD_CONFIG = botocore.config.Config(
    read_timeout=60, retries={"total_max_attempts": 5, "mode": "standard"})

TARGET_RATIO = 1.2


def create_stream(client, name: str, shards: int) -> None:
    client.create_stream(StreamName=name, ShardCount=shards)
    waiter = client.get_waiter("stream_exists")
    waiter.wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def preload(client, name: str, readings: int) -> dict[str, int]:
    """Put ``readings`` readings; returns how many landed on each shard.

    A call that timed out may still have been applied and is then put again:
    the stream holds a few records twice, which the worker counts as
    duplicates and the drain's count of stored readings ignores."""
    per_shard: dict[str, int] = {}
    pending = [{"Data": reading(i), "PartitionKey": ven_id(i)}
               for i in range(readings)]
    started = time.perf_counter()
    step = max(PUT_BATCH, readings // 5)
    shown = 0
    while pending:
        put = readings - len(pending)
        if put >= shown + step:
            shown = put
            print(f"  pre-load: {put:,} put after "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
        batch, pending = pending[:PUT_BATCH], pending[PUT_BATCH:]
        answer = client.put_records(StreamName=name, Records=batch)
        failed = []
        for entry, result in zip(batch, answer["Records"]):
            if "ErrorCode" in result:
                failed.append(entry)
            else:
                shard = result["ShardId"]
                per_shard[shard] = per_shard.get(shard, 0) + 1
        pending = failed + pending
    return per_shard


def bare_read(endpoint: str, name: str, per_shard: dict[str, int]) -> float:
    """Seconds for one thread per shard to read every record once."""
    client = make_boto3_client(endpoint, "us-east-1")
    iterators = {
        shard: client.get_shard_iterator(
            StreamName=name, ShardId=shard,
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for shard in per_shard
    }
    errors: list[BaseException] = []
    retried: list[str] = []

    def read(shard: str) -> None:
        try:
            iterator, seen, last = iterators[shard], 0, None
            while seen < per_shard[shard]:
                try:
                    page = client.get_records(ShardIterator=iterator,
                                              Limit=10_000)
                except botocore.exceptions.ReadTimeoutError:
                    # As the worker does: the same iterator, once more.
                    retried.append(shard)
                    continue
                except client.exceptions.ExpiredIteratorException:
                    # As the worker does: a new one, after the last record.
                    retried.append(shard)
                    iterator = client.get_shard_iterator(
                        StreamName=name, ShardId=shard,
                        **({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                            "StartingSequenceNumber": last} if last else
                           {"ShardIteratorType": "TRIM_HORIZON"})
                    )["ShardIterator"]
                    continue
                if page["Records"]:
                    last = page["Records"][-1]["SequenceNumber"]
                seen += len(page["Records"])
                iterator = page["NextShardIterator"]
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(shard,))
               for shard in per_shard]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    if retried:
        print(f"  (bare read: {len(retried)} GetRecords calls timed out or "
              f"found their iterator expired, and were repeated)")
    return seconds


def run_worker(url: str, endpoint: str, name: str, readings: int,
               shards: int) -> dict:
    schema = fresh_schema(url)
    log_path = Path(tempfile.mkdtemp(prefix="bench_drain_")) / "worker.log"
    worker = progress = None
    try:
        env = worker_env(url, schema, endpoint, name, "bench-drain")
        machine_before = machine_cpu()
        started = time.perf_counter()
        worker = start_worker(env, log_path)
        progress = Progress(url, schema)
        samples = watch_drain(worker, progress, readings, started,
                              log_path=log_path)
        leases_s = leases_taken_at(samples, shards)
        machine = busy_cores(machine_before, machine_cpu())
        cpu = worker.cpu_seconds()
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                f'SELECT count(*) FROM "{schema}".ven_telemetry').fetchone()[0]
    finally:
        if worker is not None:
            worker.stop()
        if progress is not None:
            progress.close()
        drop_schema(url, schema)
    if rows != readings:
        raise RuntimeError(f"{readings} readings put, {rows} rows stored")
    seconds = samples[-1].t
    return {"seconds": seconds, "leases_s": leases_s, "samples": samples,
            "cpu_cores": cpu / seconds, "machine_cores": machine}


def run(readings: int, shards: int, endpoint: str, url: str,
        plot: Path | None) -> dict:
    shown = f" --plot {shown_path(plot)}" if plot else ""
    print(f"command: {COMMAND} --readings {readings} --shards {shards} "
          f"--endpoint {endpoint}{shown}")
    print(f"load average at start: {load_average()}")
    client = boto3.client("kinesis", endpoint_url=endpoint,
                          region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test", config=PRELOAD_CONFIG)
    name = f"bench-drain-{uuid.uuid4().hex[:10]}"
    create_stream(client, name, shards)
    try:
        started = time.perf_counter()
        per_shard = preload(client, name, readings)
        put_s = time.perf_counter() - started
        print(f"pre-loaded {readings:,} readings in {put_s:.0f} s "
              f"({readings / put_s:,.0f}/s); per shard: "
              + ", ".join(f"{n:,}" for n in per_shard.values()), flush=True)
        before = bare_read(endpoint, name, per_shard)
        print(f"bare read (before)  {before:7.1f} s", flush=True)
        worker = run_worker(url, endpoint, name, readings, shards)
        print(f"worker              {worker['seconds']:7.1f} s  "
              f"(leases held after {worker['leases_s']:.1f} s; worker "
              f"{worker['cpu_cores']:.2f} cores, machine "
              f"{worker['machine_cores']:.2f} busy)", flush=True)
        after = bare_read(endpoint, name, per_shard)
        print(f"bare read (after)   {after:7.1f} s")
    finally:
        client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)

    bare = min(before, after)
    ratio = worker["seconds"] / bare
    figures = {"readings": readings, "shards": shards, "put_s": put_s,
               "bare_before_s": before, "bare_after_s": after,
               "worker_s": worker["seconds"], "leases_s": worker["leases_s"],
               "ratio": ratio, "samples": worker["samples"],
               "worker_cores": worker["cpu_cores"],
               "machine_cores": worker["machine_cores"],
               "load_end": load_average()}
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
    print(f"worker / bare read = {ratio:.2f} (target <= {TARGET_RATIO}): "
          f"{verdict}")
    if plot:
        from plot import plot_drain

        plot_drain(worker["samples"], readings,
                   f"Worker draining {readings:,} readings on {shards} "
                   f"LocalStack shards", plot,
                   markers={"leases held": worker["leases_s"],
                            "bare read took": bare})
        print(f"plot: {plot}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--endpoint", default=os.environ.get(
        "LOCALSTACK_ENDPOINT") or DEFAULT_LOCALSTACK)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--url", default=database_url())
    args = parser.parse_args(argv)
    plot = args.plot.resolve() if args.plot else None
    run(args.readings, args.shards, args.endpoint, args.url, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
