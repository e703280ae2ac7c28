"""What the stream benchmarks share: a fresh schema, the fake endpoint and
the worker as child processes, their CPU time and memory from /proc, and a
summary of the machine the figures came from."""

import contextlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg

from worker.db import migrate

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_LOCALSTACK = "http://127.0.0.1:4566"  # stack.py's default

# Generous bounds for things that take seconds on a quiet machine; they only
# keep a broken run from hanging, they are not performance limits.
START_DEADLINE_S = 120
DRAIN_DEADLINE_S = 1800

# How often progress is sampled: often enough for a smooth plot and a fine
# drain time, rarely enough that the samples cost PostgreSQL nothing.
SAMPLE_INTERVAL_S = 0.25

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def database_url() -> str:
    return (os.environ.get("TEST_DATABASE_URL")
            or os.environ.get("DATABASE_URL") or DEFAULT_URL)


def fresh_schema(url: str, prefix: str = "bench") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    migrate.upgrade(url, name)
    return name


def drop_schema(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def machine_summary() -> dict[str, str]:
    """What results.md says about where a run happened."""
    mem = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            mem[key] = int(value.split()[0]) // 1024
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpus": str(os.cpu_count()),
        "memory": f"{mem['MemTotal']:,} MiB total, "
                  f"{mem['MemAvailable']:,} MiB available",
        "load": load,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def shown_path(path: Path) -> str:
    """A path as the repository root would type it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Progress:
    """The lease table's counters, which the sink moves in the same
    transaction as the rows: the sum of records_stored is what is durably
    stored, and reading it costs nothing next to count(*) on the data."""

    def __init__(self, url: str, schema: str):
        self._conn = psycopg.connect(url, autocommit=True)
        self._schema = schema

    def read(self) -> tuple[int, int, int | None]:
        """(records stored, leases held, largest MillisBehindLatest)."""
        stored, held, behind = self._conn.execute(
            f'SELECT coalesce(sum(records_stored + records_rejected), 0), '
            f'count(owner), max(millis_behind_latest) '
            f'FROM "{self._schema}".shard_leases').fetchone()
        return int(stored), int(held), behind

    def close(self) -> None:
        self._conn.close()


def wait_until(predicate, what: str, deadline_s: float,
               pause_s: float = SAMPLE_INTERVAL_S):
    pause = threading.Event()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        pause.wait(pause_s)
    raise TimeoutError(f"gave up waiting for {what} after {deadline_s:.0f} s")


class ChildProcess:
    """A child process whose CPU time and memory can be read while it runs;
    stopped by its own pid only."""

    def __init__(self, args: list[str], env: dict | None = None,
                 log_path: Path | None = None):
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            args, cwd=REPO, env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE, stderr=self._log,
        )
        self.pid = self.process.pid

    def cpu_seconds(self) -> float:
        """User plus system CPU time of every thread so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of the line, counted from 1.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory_mib(self) -> tuple[float, float]:
        """(resident now, peak resident so far) in MiB."""
        found = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    found[key] = int(value.split()[0]) / 1024
        return found["VmRSS"], found["VmHWM"]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60) -> int:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.process.returncode


class FakeEndpoint(ChildProcess):
    """bench/fake_kinesis.py in its own process, so serving pages costs the
    measured process nothing."""

    def __init__(self, shards: int, backlog: int = 0, gated: bool = False):
        args = [PYTHON, str(BENCH / "fake_kinesis.py"), "--shards",
                str(shards), "--backlog", str(backlog)]
        super().__init__(args + (["--gated"] if gated else []))
        line = self.process.stdout.readline().decode().split()
        if not line or line[0] != "port":
            self.stop()
            raise RuntimeError("bench/fake_kinesis.py did not start")
        self.url = f"http://127.0.0.1:{line[1]}"

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:
            return answer.read()

    def release(self) -> None:
        self._get("/release")

    def stats(self) -> dict:
        return json.loads(self._get("/stats"))


def worker_env(url: str, schema: str, endpoint: str, stream: str,
               worker_id: str) -> dict[str, str]:
    """The worker's settings for a benchmark: defaults except where a
    benchmark must differ (no metrics port: several may run at once)."""
    return {
        "DATABASE_URL": url,
        "PG_SCHEMA": schema,
        "KINESIS_ENDPOINT": endpoint,
        "STREAM_NAME": stream,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "WORKER_ID": worker_id,
        "METRICS_PORT": "0",
        "LOG_FORMAT": "text",
    }


def start_worker(env: dict, log_path: Path | None = None,
                 get_records: str | None = None) -> ChildProcess:
    """``python -m worker run``, or bench/worker_proc.py when a GetRecords
    path is named (it builds the same worker with that path)."""
    if get_records is None:
        args = [PYTHON, "-m", "worker", "run"]
    else:
        args = [PYTHON, str(BENCH / "worker_proc.py"), "--get-records",
                get_records]
    return ChildProcess(args, env, log_path)


class Sample:
    """One look at a draining worker."""

    __slots__ = ("t", "stored", "held", "behind_ms", "rss_mib", "cpu_s")

    def __init__(self, t, stored, held, behind_ms, rss_mib, cpu_s):
        self.t, self.stored, self.held = t, stored, held
        self.behind_ms, self.rss_mib, self.cpu_s = behind_ms, rss_mib, cpu_s


def leases_taken_at(samples: list[Sample], shards: int) -> float:
    """When the worker was first seen holding every shard's lease (or, if
    it never held them all at once, the most it held)."""
    most = max(samples, key=lambda s: s.held)
    return next((s.t for s in samples if s.held >= shards), most.t)


def wait_for_leases(worker: ChildProcess, progress: Progress, shards: int,
                    log_path: Path | None = None) -> float:
    """Seconds until the worker holds every shard's lease."""
    started = time.perf_counter()

    def ready() -> bool:
        if not worker.alive():
            raise RuntimeError(f"the worker exited early; see {log_path}")
        return progress.read()[1] >= shards

    wait_until(ready, f"the worker to hold {shards} leases", START_DEADLINE_S)
    return time.perf_counter() - started


def watch_drain(worker: ChildProcess, progress: Progress, expected: int,
                started: float, interval_s: float = SAMPLE_INTERVAL_S,
                log_path: Path | None = None) -> list[Sample]:
    """Sample the worker until ``expected`` records are stored; the last
    sample is the first that saw them all. ``started`` is the perf_counter
    reading that sample times count from."""
    samples: list[Sample] = []
    pause = threading.Event()
    while True:
        if not worker.alive():
            raise RuntimeError(f"the worker exited while draining; see "
                               f"{log_path}")
        rss, _ = worker.memory_mib()
        cpu = worker.cpu_seconds()
        stored, held, behind = progress.read()
        now = time.perf_counter() - started
        samples.append(Sample(now, stored, held, behind, rss, cpu))
        if stored >= expected:
            return samples
        if now > DRAIN_DEADLINE_S:
            raise TimeoutError(f"{stored:,} of {expected:,} stored after "
                               f"{now:.0f} s; see {log_path}")
        pause.wait(interval_s)


def machine_cpu() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores kept busy between two machine_cpu() readings, by anything."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total * (os.cpu_count() or 1) if total else 0.0


@contextlib.contextmanager
def localstack():
    """A LocalStack endpoint for the drain, from localstack/stack.py: it
    honours LOCALSTACK_ENDPOINT, reuses one that answers on 4566, or starts
    one (stopped again when this was the last user, as for test sessions).
    Loaded by file path: that folder must not shadow LocalStack's package."""
    spec = importlib.util.spec_from_file_location(
        "ls_stack", REPO / "localstack" / "stack.py")
    stack = importlib.util.module_from_spec(spec)
    sys.modules["ls_stack"] = stack  # dataclasses look their module up
    spec.loader.exec_module(stack)
    up = stack.start_or_reuse("session")
    try:
        yield up.endpoint
    finally:
        stack.release_and_maybe_stop()
