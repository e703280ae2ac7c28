"""The worker process: discovers shards, keeps leases, runs one consumer per
held shard, and shuts down cleanly.

One control loop (this module) owns every decision about which shards run;
consumers only read and store. The loop ticks at the lease renewal interval:

1. discover shards (at start, on a timer, and at once after a shard ends);
2. one lease cycle: heartbeat, renew, take, maybe steal;
3. start consumers for newly held shards, stop those whose lease moved;
4. keep daily partitions ahead of time and drop expired ones.

Shutdown (SIGTERM/SIGINT): stop fetching, let in-flight batches commit,
release every lease so another worker takes them at once, exit 0.
"""

import logging
import threading
import time
from datetime import date, datetime, timezone

from worker.errors import WorkerError
from worker.kinesis.client import KinesisClient
from worker.kinesis.reader import ShardReader, StartPosition
from worker.runtime.consumer import ByteBudget, ShardConsumer
from worker.sink.batch import Checkpoint, LeaseToken

log = logging.getLogger(__name__)

# Consumers get this long to commit their in-flight batch at shutdown. ECS
# kills a task 30 s after SIGTERM; leases must be released before that.
SHUTDOWN_GRACE_S = 20.0

# Partition upkeep is cheap but takes a lock on the parent tables; hourly is
# plenty when partitions are created days ahead.
PARTITION_UPKEEP_INTERVAL_S = 3600.0


class Worker:
    """Wires the pieces together. Everything it needs is passed in, so tests
    can run several workers in one process against real services."""

    def __init__(self, *, stream: str, kinesis: KinesisClient, leases,
                 lease_reader, sink_factory, partition_upkeep, decode_policy,
                 settings, observer=None, stop: threading.Event | None = None):
        self.stream = stream
        self._kinesis = kinesis
        self._leases = leases  # LeaseCoordinator
        self._lease_reader = lease_reader  # shard_id -> lease row (dict)
        self._sink_factory = sink_factory
        self._partition_upkeep = partition_upkeep
        self._policy = decode_policy
        self._settings = settings
        self._observer = observer
        self.stop = stop or threading.Event()
        self._budget = ByteBudget(settings.max_inflight_bytes)
        self._consumers: dict[str, ShardConsumer] = {}
        self._lock = threading.Lock()
        self._discover_now = threading.Event()
        self._last_discovery = 0.0
        self._last_upkeep = 0.0

    # -- the control loop --------------------------------------------------

    def run(self) -> int:
        log.info("worker starting on stream %s", self.stream)
        try:
            while not self.stop.is_set():
                self._control_step()
                self.stop.wait(self._settings.renew_interval_s)
        finally:
            self._shutdown()
        return 0

    def _control_step(self) -> None:
        now = time.monotonic()
        try:
            if (self._discover_now.is_set() or now - self._last_discovery
                    >= self._settings.discovery_interval_s):
                self._discover_now.clear()
                self._discover()
                self._last_discovery = now
            self._leases.run_once()
            self._reconcile_consumers()
            if now - self._last_upkeep >= PARTITION_UPKEEP_INTERVAL_S:
                self._partition_upkeep(datetime.now(timezone.utc).date())
                self._last_upkeep = now
        except WorkerError as exc:
            # A failed cycle (database or Kinesis down) is retried on the
            # next tick; consumers keep their own retries meanwhile.
            log.warning("control cycle failed: %s", exc)
        except Exception:
            log.exception("control cycle failed")
        if self._observer:
            self._observer.control_tick()

    def _discover(self) -> None:
        shards = self._kinesis.list_shards(self.stream)
        self._leases.sync_shards(shards)
        log.debug("discovered %d shards", len(shards))

    def _reconcile_consumers(self) -> None:
        held: dict[str, int] = self._leases.held()
        with self._lock:
            for shard_id, consumer in list(self._consumers.items()):
                if held.get(shard_id) != consumer.lease.lease_counter:
                    log.info("shard %s lease moved away; stopping its "
                             "consumer", shard_id)
                    consumer.own_stop.set()
            for shard_id, counter in held.items():
                if shard_id not in self._consumers and not self.stop.is_set():
                    self._start_consumer(shard_id, counter)

    def _start_consumer(self, shard_id: str, counter: int) -> None:
        row = self._lease_reader(shard_id)
        if row is None or row["lease_counter"] != counter:
            return  # changed under us; the next cycle sees the truth
        settings = self._settings
        start = StartPosition(
            checkpoint_sequence=row["checkpoint_sequence"],
            reset_to_timestamp=row["reset_to_timestamp"],
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
        self._consumers[shard_id] = consumer
        log.info("shard %s: consumer started (lease counter %d, from %s)",
                 shard_id, counter, row["checkpoint_sequence"]
                 or ("TRIM_HORIZON" if start.is_child else start.initial))
        consumer.start()

    def _consumer_done(self, consumer: ShardConsumer, reason: str) -> None:
        shard_id = consumer.lease.shard_id
        with self._lock:
            if self._consumers.get(shard_id) is consumer:
                del self._consumers[shard_id]
        if reason == "shard_end":
            # Children become eligible now; find them without waiting.
            self._discover_now.set()
            self._leases.forget(shard_id)
        elif reason in ("lease_lost", "failed"):
            self._leases.forget(shard_id)
        log.info("shard %s consumer finished: %s", shard_id, reason)

    # -- shutdown ----------------------------------------------------------

    def _shutdown(self) -> None:
        log.info("worker stopping: committing in-flight batches")
        self.stop.set()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        with self._lock:
            consumers = list(self._consumers.values())
        for consumer in consumers:
            consumer.join(max(0.0, deadline - time.monotonic()))
            if consumer.is_alive():
                log.warning("shard %s consumer still busy at shutdown; its "
                            "batch will be re-read by the next owner",
                            consumer.lease.shard_id)
        try:
            self._leases.release_all()
            log.info("leases released")
        except Exception as exc:
            log.warning("could not release leases (%s); they expire in "
                        "%.0f s", exc, self._settings.lease_duration_s)


def today_utc() -> date:
    return datetime.now(timezone.utc).date()
