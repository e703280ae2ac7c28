"""The worker's Prometheus metrics, in a registry private to one ``Metrics``
object so tests (and several workers in one process) never share counts.

The runtime calls the verbs below; nothing here knows about Kinesis or the
sink. Per-shard series carry a ``shard_id`` label, which stays bounded: a
worker holds at most the stream's shards, and ``forget_shard`` drops the
gauges of a shard the worker no longer reads.
"""

import threading
import time
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from worker import __version__
from worker.records.model import Reason

PREFIX = "ven_worker"

# One batch is decode + COPY + fenced commit of up to one GetRecords page
# (10,000 records): milliseconds when the shard is quiet, seconds when it is
# catching up, tens of seconds only when the database struggles.
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                         5.0, 10.0, 30.0, 60.0)

# The commit alone (lease check, checkpoint, COMMIT) should take a few
# milliseconds; the upper buckets show lock waits and a slow disk.
COMMIT_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                          0.5, 1.0, 2.5, 10.0)

LEASE_CHANGES = frozenset({"taken", "stolen", "lost", "released"})


class Metrics:
    """Counters, gauges and histograms of one worker process."""

    def __init__(self, worker_id: str = "", stream_name: str = ""):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        shard = ("shard_id",)

        info = Gauge(f"{PREFIX}_info", "Constant 1, labelled with what runs.",
                     ("worker_id", "stream", "version"), registry=r)
        info.labels(worker_id, stream_name, __version__).set(1)

        self._records_read = Counter(
            f"{PREFIX}_records_read", "Kinesis records fetched.", shard,
            registry=r)
        self._rows_stored = Counter(
            f"{PREFIX}_readings_stored", "Readings stored in ven_telemetry.",
            shard, registry=r)
        self._samples_stored = Counter(
            f"{PREFIX}_load_samples_stored",
            "Load samples stored in ven_load_samples.", shard, registry=r)
        self._duplicates = Counter(
            f"{PREFIX}_duplicates",
            "Readings skipped because the same (venId, timestamp) was stored "
            "before.", shard, registry=r)
        self._rejects = Counter(
            f"{PREFIX}_rejects", "Records stored in ingest_rejects, by reason.",
            ("reason",), registry=r)
        for reason in Reason:
            # Present at 0 from the start, so rate() sees the first reject.
            self._rejects.labels(reason.value)
        self._batch_seconds = Histogram(
            f"{PREFIX}_batch_seconds",
            "Time to decode, load and commit one batch.", shard,
            buckets=BATCH_SECONDS_BUCKETS, registry=r)
        self._commit_seconds = Histogram(
            f"{PREFIX}_commit_seconds",
            "Time of the fenced checkpoint commit of one batch.", shard,
            buckets=COMMIT_SECONDS_BUCKETS, registry=r)
        self._millis_behind = Gauge(
            f"{PREFIX}_millis_behind_latest",
            "MillisBehindLatest of the shard's last GetRecords answer.", shard,
            registry=r)
        self._newest_age = Gauge(
            f"{PREFIX}_newest_reading_age_seconds",
            "Age, now, of the newest reading stored from the shard.", shard,
            registry=r)
        self._leases_held = Gauge(
            f"{PREFIX}_leases_held", "Shard leases this worker holds.",
            registry=r)
        self._lease_changes = Counter(
            f"{PREFIX}_lease_changes",
            "Leases taken, stolen, lost and released by this worker.",
            ("change",), registry=r)
        for change in sorted(LEASE_CHANGES):
            self._lease_changes.labels(change)
        self._retries = Counter(
            f"{PREFIX}_retries", "Retried operations, by cause.", ("cause",),
            registry=r)
        self._inflight_bytes = Gauge(
            f"{PREFIX}_inflight_bytes",
            "Bytes fetched from Kinesis and not yet committed.", registry=r)

        self._lock = threading.Lock()
        self._newest: dict[str, float] = {}

    # -- per batch ---------------------------------------------------------

    def records_read(self, shard_id: str, n: int) -> None:
        self._records_read.labels(shard_id).inc(n)

    def readings_stored(self, shard_id: str, readings: int,
                        samples: int = 0) -> None:
        self._rows_stored.labels(shard_id).inc(readings)
        self._samples_stored.labels(shard_id).inc(samples)

    def duplicates_skipped(self, shard_id: str, n: int) -> None:
        self._duplicates.labels(shard_id).inc(n)

    def rejected(self, reason: Reason | str, n: int = 1) -> None:
        self._rejects.labels(getattr(reason, "value", reason)).inc(n)

    def batch_took(self, shard_id: str, seconds: float) -> None:
        self._batch_seconds.labels(shard_id).observe(seconds)

    def commit_took(self, shard_id: str, seconds: float) -> None:
        self._commit_seconds.labels(shard_id).observe(seconds)

    def behind_latest(self, shard_id: str, millis: int | None) -> None:
        if millis is not None:
            self._millis_behind.labels(shard_id).set(millis)

    def newest_reading(self, shard_id: str, timestamp: datetime) -> None:
        """Record the newest reading stored; its age is computed at scrape
        time, so a shard that goes quiet shows its data getting older."""
        seen = timestamp.timestamp()
        with self._lock:
            if seen <= self._newest.get(shard_id, float("-inf")):
                return
            self._newest[shard_id] = seen
        self._newest_age.labels(shard_id).set_function(
            lambda: time.time() - seen)

    # -- leases, retries, memory -------------------------------------------

    def leases_held(self, n: int) -> None:
        self._leases_held.set(n)

    def lease_changed(self, change: str, n: int = 1) -> None:
        if change not in LEASE_CHANGES:
            raise ValueError(f"unknown lease change {change!r}")
        self._lease_changes.labels(change).inc(n)

    def retried(self, cause: str) -> None:
        self._retries.labels(cause).inc()

    def inflight_bytes(self, n: int) -> None:
        self._inflight_bytes.set(n)

    def forget_shard(self, shard_id: str) -> None:
        """Drop the shard's gauges (the worker no longer reads it), so a
        stale lag or age is not reported for a shard someone else reads."""
        with self._lock:
            self._newest.pop(shard_id, None)
        for gauge in (self._millis_behind, self._newest_age):
            try:
                gauge.remove(shard_id)
            except KeyError:
                pass

    # -- exposition --------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
