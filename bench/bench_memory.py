"""Memory: peak RSS of one worker process draining a 500,000-record backlog
on 8 shards.

Run:  .venv/bin/python bench/bench_memory.py [--records 500000] [--shards 8]
                                             [--plot bench/backlog.png]

The backlog is served by bench/fake_kinesis.py (10,000-record pages of
realistic readings, about 13 MB of data each). The worker is ``python -m
worker run`` with its default settings, so the in-flight budget
(MAX_INFLIGHT_BYTES, 64 MiB) is what should bound its memory. Peak RSS is
the kernel's high-water mark for the process (VmHWM), read just before it is
stopped; RSS is also sampled through the drain for the plot.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from fake_kinesis import STREAM
from support import (
    FakeEndpoint,
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

COMMAND = ".venv/bin/python bench/bench_memory.py"

# The bound, in MB (10^6 bytes); /proc reports KiB.
TARGET_PEAK_MB = 300
MB_PER_MIB = 1.048576


def run(records: int, shards: int, url: str, plot: Path | None) -> dict:
    shown = f" --plot {shown_path(plot)}" if plot else ""
    print(f"command: {COMMAND} --records {records} --shards {shards}{shown}")
    print(f"load average at start: {load_average()}")
    schema = fresh_schema(url)
    endpoint = FakeEndpoint(shards, records)
    log_path = Path(tempfile.mkdtemp(prefix="bench_memory_")) / "worker.log"
    worker = progress = None
    try:
        env = worker_env(url, schema, endpoint.url, STREAM, "bench-memory")
        worker = start_worker(env, log_path)
        started = time.perf_counter()
        machine_before = machine_cpu()
        progress = Progress(url, schema)
        samples = watch_drain(worker, progress, records, started,
                              log_path=log_path)
        leases_s = leases_taken_at(samples, shards)
        _, peak = worker.memory_mib()
        cpu = worker.cpu_seconds()
        machine = busy_cores(machine_before, machine_cpu())
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                f'SELECT count(*) FROM "{schema}".ven_telemetry').fetchone()[0]
    finally:
        if worker is not None:
            worker.stop()
        if progress is not None:
            progress.close()
        endpoint.stop()
        drop_schema(url, schema)
    if rows != records:
        raise RuntimeError(f"{records} records served, {rows} rows stored")

    seconds = samples[-1].t
    drain_s = seconds - leases_s
    figures = {"records": records, "shards": shards, "peak_rss_mib": peak,
               "seconds": seconds, "leases_s": leases_s,
               "records_per_s": records / drain_s,
               "cpu_cores": cpu / seconds, "machine_cores": machine,
               "samples": samples,
               "load_end": load_average()}
    print(f"{records:,} records on {shards} shards stored in {seconds:.1f} s "
          f"from start ({leases_s:.1f} s to take the leases; "
          f"{figures['records_per_s']:,.0f} records/s after), "
          f"worker {figures['cpu_cores']:.2f} cores busy on average, "
          f"machine {machine:.2f} of {os.cpu_count()}")
    peak_mb = peak * MB_PER_MIB
    figures["peak_rss_mb"] = peak_mb
    verdict = "PASS" if peak_mb < TARGET_PEAK_MB else "MISS"
    print(f"peak RSS {peak:.0f} MiB ({peak_mb:.0f} MB); target < "
          f"{TARGET_PEAK_MB} MB: {verdict}")
    if plot:
        from plot import plot_drain

        plot_drain(samples, records,
                   f"Worker draining {records:,} readings on {shards} shards "
                   f"(fake endpoint)", plot,
                   markers={"leases held": leases_s}, memory=True)
        print(f"plot: {plot}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--url", default=database_url())
    args = parser.parse_args(argv)
    plot = args.plot.resolve() if args.plot else None
    run(args.records, args.shards, args.url, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
