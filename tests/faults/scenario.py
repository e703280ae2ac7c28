"""One fault scenario's moving parts: its stream, load, workers, progress
sampler, and the end that every scenario shares (drain, stop the workers,
check, report)."""

import json
import logging
import threading
import time
from pathlib import Path

from tests.e2e.worker_harness import WAIT_DEADLINE_S, worker_env
from tests.faults.checker import Report, check
from tests.faults.load import LoadProducer
from tests.faults.pg_proxy import PgProxy
from tests.faults.progress import ProgressSampler
from tests.faults.workers import InProcessWorker, SubprocessWorker

log = logging.getLogger(__name__)

# How often waits look again; the deadline, not this, bounds them.
POLL_S = 0.05


class Scenario:
    def __init__(self, name: str, pg_url: str, schema: str, endpoint: str,
                 kinesis_client, make_stream, log_dir: Path, results):
        self.name = name
        self.pg_url = pg_url
        self.schema = schema
        self.endpoint = endpoint
        self.kinesis = kinesis_client
        self._make_stream = make_stream
        self.log_dir = log_dir
        self._results = results
        self.stream: str | None = None
        self.workers: list = []
        self.producer: LoadProducer | None = None
        self.sampler: ProgressSampler | None = None
        self.notes: dict = {}

    # -- setting up -----------------------------------------------------------

    def make_stream(self, shards: int) -> str:
        self.stream = self._make_stream(shards)
        return self.stream

    def env(self, **extra: str) -> dict:
        return {**worker_env(self.pg_url, self.schema, self.endpoint,
                             self.stream), **extra}

    def start_worker(self, name: str, proxy: bool = True,
                     kinesis_endpoint: str | None = None,
                     **extra_env: str) -> SubprocessWorker:
        env = self.env(**extra_env)
        if kinesis_endpoint:
            env["KINESIS_ENDPOINT"] = kinesis_endpoint
        worker = SubprocessWorker(name, env, self.log_dir,
                                  PgProxy(self.pg_url) if proxy else None)
        self.workers.append(worker)
        return worker

    def start_inprocess(self, name: str, wrap, proxy: bool = True,
                        **extra_env: str) -> InProcessWorker:
        worker = InProcessWorker(name, self.env(**extra_env), wrap,
                                 PgProxy(self.pg_url) if proxy else None)
        self.workers.append(worker)
        return worker

    def start_load(self, source=None, **pace) -> LoadProducer:
        self.producer = LoadProducer(self.kinesis, self.stream, source,
                                     **pace)
        self.sampler = ProgressSampler(self.pg_url, self.schema, self.stream,
                                       self.producer.ledger)
        self.producer.start()
        self.sampler.start()
        return self.producer

    # -- waiting --------------------------------------------------------------

    def processed(self) -> int:
        return self.sampler.processed

    def wait_for(self, predicate, what: str,
                 deadline_s: float = WAIT_DEADLINE_S):
        """Poll ``predicate`` often (kill points are short windows)."""
        pause = threading.Event()
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            value = predicate()
            if value:
                return value
            pause.wait(POLL_S)
        raise AssertionError(f"{self.name}: timed out waiting for {what}")

    def wait_progress(self, more: int = 50) -> None:
        """Wait until ``more`` further records are processed."""
        start = self.processed()
        self.wait_for(lambda: self.processed() >= start + more,
                      f"{more} more records processed")

    # -- the common end -------------------------------------------------------

    def finish(self) -> Report:
        """Stop the load, let the workers drain it, stop them with SIGTERM,
        check the tables, report, and assert nothing was lost or doubled."""
        ledger = self.producer.finish()
        self._drain(len(ledger))
        exits = {}
        for worker in self.workers:
            if worker.alive():
                exits[worker.name] = worker.terminate()
        self.sampler.stop()
        bad_exits = {n: code for n, code in exits.items() if code != 0}

        self.notes["slowest put"] = f"{self.producer.slowest_put_s:.1f} s"
        self.notes["longest pause"] = (
            f"{self.sampler.longest_pause_shard or '-'} from "
            f"{self.sampler.longest_pause_at_s:.1f} s")
        report = check(self.name, self.pg_url, self.schema, self.stream,
                       ledger.records(), self.sampler.longest_pause_s,
                       self.notes)
        if bad_exits:
            report.unexpected.append(f"workers exited non-zero: {bad_exits}")
        self._record(report)
        assert report.ok, self._failure(report)
        return report

    def _drain(self, total: int) -> None:
        """Wait for every record to be processed; on timeout go on, so the
        checker can say what is missing."""
        try:
            self.wait_for(lambda: self.processed() >= total,
                          f"{total} records processed")
        except AssertionError as exc:
            log.warning("%s", exc)

    def _record(self, report: Report) -> None:
        print(report.line())
        self._results.add(report)

    def _failure(self, report: Report) -> str:
        logs = ", ".join(str(self.log_dir / f"{w.name}.log")
                         for w in self.workers
                         if isinstance(w, SubprocessWorker))
        return (f"{report.line()}\nlost e.g. {report.lost_examples}\n"
                + "\n".join(report.unexpected) + f"\nworker logs: {logs}")

    def close(self) -> None:
        if self.producer is not None and self.producer.is_alive():
            self.producer.finish()
        if self.sampler is not None and self.sampler.is_alive():
            self.sampler.stop()
        for worker in self.workers:
            worker.close()


class Results:
    """Reports of a session: appended to a JSON-lines file as they come,
    and listed at the end of the run."""

    def __init__(self, path: Path):
        self.path = path
        self.reports: list[Report] = []

    def add(self, report: Report) -> None:
        self.reports.append(report)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as out:
            line = {**report.as_dict(), "ok": report.ok}
            out.write(json.dumps(line, default=str) + "\n")
