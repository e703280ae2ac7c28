"""What the consumers and the control loop report, turned into metrics and
health. Keeps ``observe/`` free of any knowledge of batches and pages."""

import collections
import threading

from worker.kinesis.client import Page
from worker.observe import Observability
from worker.sink.batch import BatchResult


class RuntimeObserver:
    def __init__(self, observe: Observability, budget=None):
        self._metrics = observe.metrics
        self._health = observe.health
        self._budget = budget
        # Totals since the last periodic summary (see ``take_summary``).
        self._lock = threading.Lock()
        self._since = collections.Counter()

    def batch_stored(self, shard_id: str, result: BatchResult, page: Page,
                     seconds: float, newest=None, samples: int = 0) -> None:
        with self._lock:
            self._since["batches"] += 1
            self._since["records"] += len(page.records)
            self._since["stored"] += result.stored
            self._since["duplicates"] += result.duplicates
            self._since["rejected"] += sum(result.rejected.values())
        m = self._metrics
        m.records_read(shard_id, len(page.records))
        m.readings_stored(shard_id, result.stored, samples)
        if result.duplicates:
            m.duplicates_skipped(shard_id, result.duplicates)
        for reason, n in result.rejected.items():
            m.rejected(reason, n)
        m.batch_took(shard_id, seconds)
        m.behind_latest(shard_id, page.millis_behind_latest)
        if newest is not None:
            m.newest_reading(shard_id, newest)
        if self._budget is not None:
            m.inflight_bytes(self._budget.used)
        self._health.reader_progressed(shard_id)

    def watch_budget(self, budget) -> None:
        """Report this budget's bytes in flight with every batch."""
        self._budget = budget

    def progress(self, shard_id: str) -> None:
        self._health.reader_progressed(shard_id)

    def reader_stopped(self, shard_id: str) -> None:
        self._health.reader_stopped(shard_id)
        self._metrics.forget_shard(shard_id)

    def retry(self, cause: str) -> None:
        self._metrics.retried(cause)

    def leases(self, held: int, change: str | None = None) -> None:
        self._metrics.leases_held(held)
        if change:
            self._metrics.lease_changed(change)

    def take_summary(self) -> dict:
        """Totals since the last call, and the bytes in flight now."""
        with self._lock:
            since, self._since = self._since, collections.Counter()
        summary = {key: since[key] for key in
                   ("batches", "records", "stored", "duplicates", "rejected")}
        summary["inflight_bytes"] = self._budget.used if self._budget else 0
        return summary

    def control_tick(self) -> None:
        self._health.lease_loop_ticked()

    def stopping(self) -> None:
        self._health.stopping()
