"""The worker process: discovers shards, keeps leases, runs one consumer per
held shard, and shuts down cleanly.

The lease coordinator runs its own loop (heartbeat, renew, take, steal), so
a slow batch never delays a renewal. This module's control loop owns every
decision about which consumers run; consumers only read and store. It wakes
when a lease is acquired or lost, and at least every ``CONTROL_TICK_S``:

1. discover shards (at start, on a timer, and at once after a shard ends);
2. start consumers for held shards that have none (a consumer that failed is
   restarted this way, from the last committed checkpoint), stop those whose
   lease moved away;
3. keep daily partitions ahead of time and drop expired ones.

Shutdown (SIGTERM/SIGINT): stop fetching, let in-flight batches commit,
release every lease so another worker takes them at once, exit 0.
"""

import logging
import threading
import time
from datetime import datetime, timezone

from worker.errors import TransientError, WorkerError
from worker.kinesis.client import KinesisClient
from worker.kinesis.reader import LATEST, ShardReader, StartPosition
from worker.runtime.consumer import ByteBudget, ShardConsumer
from worker.sink.batch import SHARD_END, Checkpoint, LeaseToken

log = logging.getLogger(__name__)

# Consumers get this long to commit their in-flight batch at shutdown. ECS
# kills a task 30 s after SIGTERM; leases must be released before that.
SHUTDOWN_GRACE_S = 20.0

# Partition upkeep is cheap but takes a lock on the parent tables; hourly is
# plenty when partitions are created days ahead.
PARTITION_UPKEEP_INTERVAL_S = 3600.0

# A consumer that failed is restarted after a pause that doubles with each
# consecutive failure of its shard, up to a minute: a persistent fault (a
# deleted stream, a bug) is retried without flooding the log.
RESTART_BACKOFF_INITIAL_S = 1.0
RESTART_BACKOFF_MAX_S = 60.0

# A periodic summary at info: often enough to show an operator the worker is
# alive and moving, rare enough that per-batch detail stays at debug.
SUMMARY_INTERVAL_S = 60.0

# How often the control loop looks without being woken. Lease changes wake it
# at once; this only bounds how soon a failed consumer is restarted.
CONTROL_TICK_S = 1.0


class Worker:
    """Wires the pieces together. Everything it needs is passed in, so tests
    can run several workers in one process against real services."""

    def __init__(self, *, stream: str, kinesis: KinesisClient, leases,
                 sink_factory, partition_upkeep, decode_policy,
                 settings, observer=None, stop: threading.Event | None = None):
        self.stream = stream
        self._kinesis = kinesis
        self._leases = leases  # LeaseCoordinator, its loop already started
        self._sink_factory = sink_factory
        self._partition_upkeep = partition_upkeep
        self._policy = decode_policy
        self._settings = settings
        self._observer = observer
        self.stop = stop or threading.Event()
        self._budget = ByteBudget(settings.max_inflight_bytes)
        if observer is not None:
            observer.watch_budget(self._budget)
        self._consumers: dict[str, ShardConsumer] = {}
        # shard_id -> (consecutive failures, earliest restart time)
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._discover_now = threading.Event()
        # Never: monotonic time starts near zero on a freshly booted host.
        self._last_discovery = float("-inf")
        self._last_upkeep = float("-inf")
        self._last_summary = time.monotonic()

    # -- the control loop --------------------------------------------------

    def run(self) -> int:
        log.info("worker %s starting on stream %s",
                 self._leases.worker_id, self.stream)
        try:
            self._control_step()  # discover before the first lease cycle
            self._leases.start()
            while not self.stop.is_set():
                self._control_step()
                self._wake.wait(CONTROL_TICK_S)
                self._wake.clear()
        finally:
            self._shutdown()
        return 0

    def _control_step(self) -> None:
        now = time.monotonic()
        # Each step on its own: Kinesis being down must not stop consumers
        # from being started or stopped, and the reverse. A failed step is
        # tried again on a later tick.
        if (self._discover_now.is_set() or now - self._last_discovery
                >= self._settings.discovery_interval_s):
            self._discover_now.clear()
            if self._try_step("discovery", self._discover):
                self._last_discovery = now
        self._try_step("reconcile", self._reconcile_consumers)
        if now - self._last_upkeep >= PARTITION_UPKEEP_INTERVAL_S:
            today = datetime.now(timezone.utc).date()
            if self._try_step("partition upkeep", self._partition_upkeep,
                              today):
                self._last_upkeep = now
        if self._observer:
            self._observer.control_tick()
            self._observer.leases(len(self._leases.held()))
            if now - self._last_summary >= SUMMARY_INTERVAL_S:
                self._last_summary = now
                self._log_summary()

    def _log_summary(self) -> None:
        summary = self._observer.take_summary()
        held = self._leases.held()
        log.info("summary: %d leases (%s); last %.0f s: %d records in %d "
                 "batches, %d stored, %d duplicates, %d rejected; %d bytes "
                 "in flight", len(held), ", ".join(sorted(held)) or "none",
                 SUMMARY_INTERVAL_S, summary["records"], summary["batches"],
                 summary["stored"], summary["duplicates"],
                 summary["rejected"], summary["inflight_bytes"],
                 extra={"summary": summary})

    @staticmethod
    def _try_step(name: str, step, *args) -> bool:
        try:
            step(*args)
            return True
        except WorkerError as exc:
            log.warning("%s failed (retried on a later tick): %s", name, exc)
        except Exception:
            log.exception("%s failed (retried on a later tick)", name)
        return False

    def attach_leases(self, coordinator) -> None:
        """The coordinator is built after the worker, because its callbacks
        are the worker's methods."""
        self._leases = coordinator

    # -- hooks for the lease coordinator (called on its thread) -------------

    def lease_acquired(self, lease) -> None:
        self._wake.set()

    def lease_lost(self, shard_id: str, counter: int) -> None:
        # NOTE: called on the lease thread while it holds the coordinator's
        # database lock, so this takes no lock of the worker's: the control
        # loop may hold that one while it waits for the database lock. A
        # single dict read is atomic.
        consumer = self._consumers.get(shard_id)
        if consumer is not None and consumer.lease.lease_counter == counter:
            consumer.own_stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Make the control loop look now (used by shutdown)."""
        self._wake.set()

    def _discover(self) -> None:
        # Rows created after the listing began (another worker saw newer
        # shards) must not be pruned as "gone" by this older listing.
        listed_at = self._leases.database_now()
        shards = self._kinesis.list_shards(self.stream)
        self._leases.sync_shards(shards, listed_at)
        log.debug("discovered %d shards", len(shards))

    def _reconcile_consumers(self) -> None:
        held: dict[str, int] = self._leases.held()
        now = time.monotonic()
        with self._lock:
            for shard_id, consumer in list(self._consumers.items()):
                if held.get(shard_id) != consumer.lease.lease_counter:
                    log.info("shard %s lease moved away; stopping its "
                             "consumer", shard_id)
                    consumer.own_stop.set()
            to_start = [
                (shard_id, counter) for shard_id, counter in held.items()
                if shard_id not in self._consumers
                and self._failures.get(shard_id, (0, 0.0))[1] <= now
            ]
        # Outside the lock: starting reads the lease row, and the lease
        # thread may hold the database while it calls back into the worker.
        for shard_id, counter in to_start:
            if self.stop.is_set():
                return
            try:
                self._start_consumer(shard_id, counter)
            except TransientError as exc:
                # One shard's lease row unreadable now (the database is
                # down or the row busy) must not hold back the others; this
                # one is tried again next cycle.
                log.warning("shard %s: not started this cycle: %s",
                            shard_id, exc)

    def _start_consumer(self, shard_id: str, counter: int) -> None:
        row = self._leases.lease_row(shard_id)
        if (row is None or row["lease_counter"] != counter
                or row["checkpoint_sequence"] == SHARD_END):
            return  # changed under us, or ended; the coordinator settles it
        settings = self._settings
        reset_to = row["reset_to_timestamp"]
        if (settings.initial_position == LATEST and reset_to is None
                and row["checkpoint_sequence"] is None
                and not row["parent_shard_ids"]):
            # Fixed now, so a restart before the first commit resumes here
            # and not at a later LATEST.
            reset_to = self._leases.pin_start(shard_id, counter)
            if reset_to is None:
                return  # the row changed under us; the next cycle retries
        start = StartPosition(
            checkpoint_sequence=row["checkpoint_sequence"],
            reset_to_timestamp=reset_to,
            initial=settings.initial_position,
            initial_timestamp=settings.initial_timestamp,
            is_child=bool(row["parent_shard_ids"]),
        )
        committed = None
        if row["checkpoint_sequence"] is not None:
            committed = Checkpoint(row["checkpoint_sequence"],
                                   row["checkpoint_sub_sequence"])
        reader = ShardReader(self._kinesis, self.stream, shard_id, start,
                             settings.max_records, settings.idle_interval_s,
                             self.stop)
        lease = LeaseToken(self.stream, shard_id, self._leases.worker_id,
                           counter)
        consumer = ShardConsumer(lease, reader, self._sink_factory,
                                 self._policy, self._budget, self.stop,
                                 self._consumer_done, self._observer,
                                 committed=committed)
        with self._lock:
            if shard_id in self._consumers:
                return
            self._consumers[shard_id] = consumer
        log.info("shard %s: consumer started (lease counter %d, from %s)",
                 shard_id, counter, _shown_start(start))
        consumer.start()

    def _consumer_done(self, consumer: ShardConsumer, reason: str) -> None:
        shard_id = consumer.lease.shard_id
        with self._lock:
            if self._consumers.get(shard_id) is consumer:
                del self._consumers[shard_id]
        if reason == "shard_end":
            # Children become eligible now; find them without waiting. The
            # coordinator gives the ended lease back on its next cycle.
            self._discover_now.set()
        elif reason == "lease_lost":
            # Only this lease: the shard may be ours again under a newer
            # counter by now.
            self._leases.forget(shard_id, consumer.lease.lease_counter)
        # "failed": the lease is still ours; the control loop restarts the
        # consumer from the last committed checkpoint after a pause.
        with self._lock:
            if reason == "failed":
                # A consumer that stored something before failing starts
                # the count afresh: occasional faults never add up to the
                # longest pause.
                count = 1
                if not consumer.batches_committed:
                    count += self._failures.get(shard_id, (0, 0.0))[0]
                pause = min(RESTART_BACKOFF_MAX_S,
                            RESTART_BACKOFF_INITIAL_S * 2 ** (count - 1))
                self._failures[shard_id] = (count, time.monotonic() + pause)
            else:
                self._failures.pop(shard_id, None)
        log.info("shard %s consumer finished: %s", shard_id, reason)
        if self._observer:
            self._observer.reader_stopped(shard_id)
        self._wake.set()

    # -- shutdown ----------------------------------------------------------

    def _shutdown(self) -> None:
        log.info("worker stopping: committing in-flight batches")
        if self._observer:
            self._observer.stopping()
        self.stop.set()
        self._leases.drain()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        with self._lock:
            consumers = list(self._consumers.values())
        for consumer in consumers:
            consumer.join(max(0.0, deadline - time.monotonic()))
            if consumer.is_alive():
                log.warning("shard %s consumer still busy at shutdown; its "
                            "batch will be re-read by the next owner",
                            consumer.lease.shard_id)
        # Stops the lease loop and gives every lease back (never raises).
        self._leases.close()


def _shown_start(start: StartPosition) -> str:
    """Where a consumer starts, as its log line says it."""
    if start.checkpoint_sequence is not None:
        return start.checkpoint_sequence
    if start.reset_to_timestamp is not None:
        return f"AT_TIMESTAMP {start.reset_to_timestamp.isoformat()}"
    return "TRIM_HORIZON" if start.is_child else start.initial
