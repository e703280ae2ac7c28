"""Drain: the time for the worker to store a LocalStack stream's backlog,
against a bare GetRecords loop reading the same records and doing nothing.

Run:  .venv/bin/python bench/bench_drain.py [--readings 50000] [--shards 4]
          [--rounds 3] [--endpoint http://127.0.0.1:4566]
          [--plot bench/drain.png]

LOCALSTACK_ENDPOINT, when set, is the default endpoint. A fresh stream is
pre-loaded once per run, then read in interleaved rounds (bare, worker,
bare, worker, ...), each round reporting its own figures so noise shows:

- bare read: one thread per shard, all shards at once as the worker reads
  them, GetRecords with the worker's Limit and no pause, from
  TRIM_HORIZON until every record of the shard is read; timed from the first
  GetShardIterator to the last record.
- worker: ``python -m worker run``, default settings but MAX_RECORDS (the
  same Limit, see DEFAULT_LIMIT), fresh schema; timed
  until the lease table counts every record stored, both from the process
  start (imports, start-up checks and lease taking included) and from the
  first lease it was seen holding (the reading itself).

Each round's ratio compares the worker with the bare read of the same
round; the verdict uses the median round.

kinesis-mock (LocalStack's Kinesis) is the limit of both reads: a
single-threaded Node process whose cost per PutRecords record grows with the
records already on the target shard, and whose GetRecords costs about a
millisecond per record returned. The pre-load therefore puts every shard's
records in parallel, one thread per shard with an explicit hash key, so that
no shard grows past its share and the emulator is never idle waiting on one
client.
"""

import argparse
import os
import statistics
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

COMMAND = ".venv/bin/python bench/bench_drain.py"

# PutRecords takes at most 500 records a call. Smaller calls are no faster
# on kinesis-mock (measured: 20,000 readings, 4 putters, batches of 100 took
# 51 s, of 500 took 37 s): its cost is per record, not per call.
PUT_BATCH = 500

# The pre-load is not what is measured: give LocalStack, slow under load,
# two minutes per call and let botocore retry, instead of failing the run.
PRELOAD_CONFIG = botocore.config.Config(
    read_timeout=120, retries={"total_max_attempts": 5, "mode": "standard"})

# GetRecords Limit of both reads (the worker gets it as MAX_RECORDS), so
# both ask for pages of the same size. Not the worker's default of 10,000:
# kinesis-mock spends about 1 ms per record returned on one thread, so four
# shards' full pages (it cuts them at 10 MB, about 7,600 of these readings)
# come back together after about 30 s, past the worker's 15 s read timeout,
# and each retry asks the busy emulator for the same page again. 2,000
# records keep four concurrent calls near 8 s.
DEFAULT_LIMIT = 2_000

# The bare read's socket timeout: the worker's (worker/kinesis/client.py),
# so a call too slow for the worker is also repeated by the bare read.
BARE_READ_TIMEOUT_S = 15

# Interleaved rounds: three give a median that one slow round cannot move.
DEFAULT_ROUNDS = 3

# Pre-load progress lines: one per tenth, enough to show the pace falling.
PROGRESS_STEPS = 10

TARGET_RATIO = 1.2


def kinesis_client(endpoint: str, config=PRELOAD_CONFIG):
    return boto3.client("kinesis", endpoint_url=endpoint,
                        region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=config)


def create_stream(client, name: str, shards: int) -> dict[str, str]:
    """The stream's shards, each with the lowest hash key it takes."""
    client.create_stream(StreamName=name, ShardCount=shards)
    waiter = client.get_waiter("stream_exists")
    waiter.wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    listed = client.list_shards(StreamName=name)["Shards"]
    return {s["ShardId"]: s["HashKeyRange"]["StartingHashKey"]
            for s in listed}


def put_shard(client, name: str, hash_key: str, indexes: list[int],
              tally) -> int:
    """Put readings ``indexes`` on the shard starting at ``hash_key``;
    returns how many it acknowledged.

    A call that timed out may still have been applied and is then put again:
    the stream holds a few records twice, which the worker counts as
    duplicates and the drain's count of stored readings ignores."""
    pending = [{"Data": reading(i), "PartitionKey": ven_id(i),
                "ExplicitHashKey": hash_key} for i in indexes]
    put = 0
    while pending:
        batch, pending = pending[:PUT_BATCH], pending[PUT_BATCH:]
        answer = client.put_records(StreamName=name, Records=batch)
        failed = [entry for entry, result in zip(batch, answer["Records"])
                  if "ErrorCode" in result]
        put += len(batch) - len(failed)
        tally(len(batch) - len(failed))
        pending = failed + pending
    return put


def preload(endpoint: str, name: str, shards: dict[str, str],
            readings: int) -> dict[str, int]:
    """Put ``readings`` readings, one putter thread per shard; returns how
    many landed on each shard. Reading i goes to shard i mod N: with a
    fleet a multiple of N, each VEN's readings share a shard, in order."""
    ids = list(shards)
    counts: dict[str, int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    started = time.perf_counter()
    step = max(1, readings // PROGRESS_STEPS)
    state = {"put": 0, "shown": 0, "shown_at": 0.0}

    def tally(n: int) -> None:
        with lock:
            state["put"] += n
            if state["put"] < state["shown"] + step:
                return
            now = time.perf_counter() - started
            pace = (state["put"] - state["shown"]) / (now - state["shown_at"])
            state["shown"], state["shown_at"] = state["put"], now
            print(f"  pre-load: {state['put']:,} put after {now:.0f} s "
                  f"({pace:,.0f}/s since the last line)", flush=True)

    def putter(k: int) -> None:
        try:
            client = kinesis_client(endpoint)
            mine = list(range(k, readings, len(ids)))
            counts[ids[k]] = put_shard(client, name, shards[ids[k]], mine,
                                       tally)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=putter, args=(k,))
               for k in range(len(ids))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return {shard: counts[shard] for shard in ids}


def bare_read(endpoint: str, name: str, per_shard: dict[str, int],
              limit: int) -> float:
    """Seconds for one thread per shard, all at once, to read every record."""
    config = botocore.config.Config(read_timeout=BARE_READ_TIMEOUT_S,
                                    retries={"total_max_attempts": 1})
    errors: list[BaseException] = []
    retried: list[str] = []

    def read(shard: str) -> None:
        try:
            client = kinesis_client(endpoint, config)
            iterator = client.get_shard_iterator(
                StreamName=name, ShardId=shard,
                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            seen, last = 0, None
            while seen < per_shard[shard]:
                try:
                    page = client.get_records(ShardIterator=iterator,
                                              Limit=limit)
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
               shards: int, limit: int) -> dict:
    schema = fresh_schema(url)
    log_path = Path(tempfile.mkdtemp(prefix="bench_drain_")) / "worker.log"
    worker = progress = None
    try:
        env = worker_env(url, schema, endpoint, name, "bench-drain")
        env["MAX_RECORDS"] = str(limit)
        progress = Progress(url, schema)
        machine_before = machine_cpu()
        started = time.perf_counter()
        worker = start_worker(env, log_path)
        samples = watch_drain(worker, progress, readings, started,
                              log_path=log_path)
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
    first = leases_taken_at(samples, 1)
    return {"seconds": seconds, "first_lease_s": first,
            "leases_s": leases_taken_at(samples, shards),
            "reading_s": seconds - first, "samples": samples,
            "cpu_cores": cpu / seconds, "machine_cores": machine}


def shard_counts(client, name: str, readings: int) -> dict[str, int]:
    """A stream pre-loaded by an earlier run (--keep-stream): its shards,
    and the share of ``readings`` each holds as preload() spreads them."""
    ids = [s["ShardId"] for s in client.list_shards(StreamName=name)["Shards"]]
    return {shard: len(range(k, readings, len(ids)))
            for k, shard in enumerate(ids)}


def run(readings: int, shards: int, endpoint: str, url: str,
        plot: Path | None, rounds: int = DEFAULT_ROUNDS,
        limit: int = DEFAULT_LIMIT, reuse: str | None = None,
        keep: bool = False) -> dict:
    shown = f" --plot {shown_path(plot)}" if plot else ""
    shown += f" --reuse-stream {reuse}" if reuse else ""
    shown += " --keep-stream" if keep else ""
    print(f"command: {COMMAND} --readings {readings} --shards {shards} "
          f"--rounds {rounds} --limit {limit} --endpoint {endpoint}{shown}")
    print(f"load average at start: {load_average()}")
    client = kinesis_client(endpoint)
    name = reuse or f"bench-drain-{uuid.uuid4().hex[:10]}"
    results = []
    put_s = None
    try:
        if reuse:
            per_shard = shard_counts(client, name, readings)
            print(f"reusing stream {name}, pre-loaded by an earlier run")
        else:
            hash_keys = create_stream(client, name, shards)
            started = time.perf_counter()
            per_shard = preload(endpoint, name, hash_keys, readings)
            put_s = time.perf_counter() - started
            print(f"pre-loaded {readings:,} readings in {put_s:.0f} s "
                  f"({readings / put_s:,.0f}/s) on stream {name}; per "
                  f"shard: " + ", ".join(f"{n:,}" for n in per_shard.values()),
                  flush=True)
        for number in range(1, rounds + 1):
            bare = bare_read(endpoint, name, per_shard, limit)
            print(f"round {number}  bare read  {bare:6.1f} s", flush=True)
            worker = run_worker(url, endpoint, name, readings, shards, limit)
            worker["bare_s"] = bare
            results.append(worker)
            print(f"round {number}  worker     {worker['seconds']:6.1f} s "
                  f"from start, {worker['reading_s']:6.1f} s from its first "
                  f"lease (first lease {worker['first_lease_s']:.1f} s, all "
                  f"{shards} {worker['leases_s']:.1f} s; worker "
                  f"{worker['cpu_cores']:.2f} cores, machine "
                  f"{worker['machine_cores']:.2f} busy)  ratio "
                  f"{worker['seconds'] / bare:.2f} / "
                  f"{worker['reading_s'] / bare:.2f}  load "
                  f"{load_average()}", flush=True)
    finally:
        if not keep:
            client.delete_stream(StreamName=name,
                                 EnforceConsumerDeletion=True)

    from_start = [r["seconds"] / r["bare_s"] for r in results]
    from_lease = [r["reading_s"] / r["bare_s"] for r in results]
    ratio = statistics.median(from_start)
    lease_ratio = statistics.median(from_lease)
    median = sorted(results, key=lambda r: r["seconds"] / r["bare_s"])[
        len(results) // 2]
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
    print(f"worker / bare read, median of {rounds} rounds: {ratio:.2f} from "
          f"the worker's start (target <= {TARGET_RATIO}: {verdict}); "
          f"{lease_ratio:.2f} from its first lease")
    figures = {"readings": readings, "shards": shards, "put_s": put_s,
               "limit": limit,
               "rounds": [{k: r[k] for k in ("bare_s", "seconds",
                                             "first_lease_s", "leases_s",
                                             "reading_s", "cpu_cores",
                                             "machine_cores")}
                          for r in results],
               "ratio": ratio, "lease_ratio": lease_ratio,
               "worker_s": median["seconds"], "bare_s": median["bare_s"],
               "samples": median["samples"], "load_end": load_average()}
    if plot:
        from plot import plot_drain

        plot_drain(median["samples"], readings,
                   f"Worker draining {readings:,} readings on {shards} "
                   f"LocalStack shards (median round)", plot,
                   markers={"first lease": median["first_lease_s"],
                            "bare read took (from first lease)":
                                median["first_lease_s"] + median["bare_s"]})
        print(f"plot: {plot}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                        help="GetRecords Limit of both reads")
    parser.add_argument("--reuse-stream", metavar="NAME",
                        help="read a stream an earlier --keep-stream run "
                             "pre-loaded with the same --readings")
    parser.add_argument("--keep-stream", action="store_true",
                        help="leave the stream for --reuse-stream")
    parser.add_argument("--endpoint", default=os.environ.get(
        "LOCALSTACK_ENDPOINT") or DEFAULT_LOCALSTACK)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--url", default=database_url())
    args = parser.parse_args(argv)
    plot = args.plot.resolve() if args.plot else None
    run(args.readings, args.shards, args.endpoint, args.url, plot,
        args.rounds, args.limit, args.reuse_stream, args.keep_stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
