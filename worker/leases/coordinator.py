"""One worker's side of lease balancing: the cycle and the loop that runs it.

The runtime's view of this is small:

- ``held()``: {shard_id: lease_counter} this worker holds right now; the
  counter is what the sink's fenced commit must present.
- ``on_acquired(lease)``: called (in the loop's thread) for each lease taken
  or stolen, with the new counter and the position to start from.
- ``on_lost(shard_id, counter)``: called when a renewal finds the lease gone
  (stolen after expiry, reset by an operator). The reader must stop; its
  in-flight batch will fail its fence anyway.
- ``forget(shard_id)``: the runtime dropped a shard on its own (its commit
  raised LeaseLost); the coordinator stops renewing it.
- ``start()`` / ``drain()`` / ``close()``: run the loop in a thread; stop
  taking new leases while readers flush; then stop and give everything back.

A failing cycle (database down, a lock that will not clear) is logged and
the loop goes on with a fresh connection; leases that could not be renewed
simply expire, and the fence keeps storage exactly once meanwhile.
"""

import logging
import random
import threading
from collections.abc import Callable

import psycopg

from worker.errors import TransientError
from worker.kinesis.selector import ALL_SHARDS, ShardSelector
from worker.leases.balance import plan_cycle
from worker.leases.model import Lease
from worker.leases.settings import LeaseSettings
from worker.leases.table import LeaseBusy, LeaseTable

log = logging.getLogger(__name__)

# Longest wait for the loop's thread to finish its cycle on close.
CLOSE_JOIN_TIMEOUT_S = 30.0


def _ignore(*_args) -> None:
    pass


class LeaseCoordinator:
    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        stream_name: str,
        worker_id: str,
        selector: ShardSelector = ALL_SHARDS,
        settings: LeaseSettings | None = None,
        on_acquired: Callable[[Lease], None] = _ignore,
        on_lost: Callable[[str, int], None] = _ignore,
        rng: random.Random | None = None,
    ):
        """``connect`` opens an autocommit connection in the worker's schema;
        it is called again after a connection fails."""
        self._connect = connect
        self.stream_name = stream_name
        self.worker_id = worker_id
        self.selector = selector
        self.settings = settings or LeaseSettings()
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._rng = rng or random.Random()

        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._conn: psycopg.Connection | None = None
        self._table: LeaseTable | None = None
        self._draining = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed_cycles = 0

    # -- what the runtime reads --------------------------------------------

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def forget(self, shard_id: str) -> None:
        with self._lock:
            self._held.pop(shard_id, None)

    # -- one cycle ----------------------------------------------------------

    def _lease_table(self) -> LeaseTable:
        if self._table is None:
            conn = self._connect()
            # See LOCK_WAIT_FRACTION_OF_CYCLE: wait for a commit, not forever.
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false)",
                (f"{int(self.settings.lock_wait_s * 1000)}ms",),
            )
            self._conn = conn
            self._table = LeaseTable(
                conn, self.stream_name, self.settings.lease_duration_s
            )
        return self._table

    def _drop_connection(self) -> None:
        conn, self._conn, self._table = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                log.debug("closing a failed lease connection", exc_info=True)

    def run_once(self) -> None:
        """Heartbeat, renew what is held, give back ended shards, then take
        free leases or steal one. Raises on database errors; the loop logs
        them and goes on."""
        try:
            self._cycle(self._lease_table())
        except psycopg.Error:
            # The connection may be broken; the next cycle opens a new one.
            self._drop_connection()
            raise

    def _cycle(self, table: LeaseTable) -> None:
        selector = str(self.selector)
        table.heartbeat(self.worker_id, selector)

        self._renew_held(table)

        if self._draining.is_set():
            return
        live = table.live_workers(selector)
        plan = plan_cycle(
            table.list(), self.selector, self.worker_id, self.held(), live,
            self.settings.max_steals_per_cycle, self._rng,
        )
        for lease in plan.release:
            self._release_ended(table, lease)
        for lease in plan.take:
            self._acquire(table.take, lease, "took")
        for lease in plan.steal:
            self._acquire(table.steal, lease, "stole")

        table.prune_workers(self.settings.dead_worker_retention_s)

    def _renew_held(self, table: LeaseTable) -> None:
        for shard_id, counter in self.held().items():
            try:
                renewed = table.renew(shard_id, self.worker_id, counter)
            except LeaseBusy:
                # Our own commit holds the row; renew next cycle.
                log.debug("worker %s: shard %s busy, renewal deferred",
                          self.worker_id, shard_id)
                continue
            if not renewed:
                self._lose(shard_id, counter)

    def _lose(self, shard_id: str, counter: int) -> None:
        with self._lock:
            if self._held.get(shard_id) != counter:
                return
            del self._held[shard_id]
        log.info("worker %s lost shard %s (lease counter %d)",
                 self.worker_id, shard_id, counter)
        try:
            self._on_lost(shard_id, counter)
        except Exception:
            log.exception("worker %s: lost-lease callback failed for shard %s",
                          self.worker_id, shard_id)

    def _release_ended(self, table: LeaseTable, lease: Lease) -> None:
        counter = self.held().get(lease.shard_id)
        if counter is None:
            return
        try:
            released = table.release(lease.shard_id, self.worker_id, counter)
        except LeaseBusy:
            return  # the final commit is still going; next cycle
        self.forget(lease.shard_id)
        if released:
            log.info("worker %s released ended shard %s",
                     self.worker_id, lease.shard_id)

    def _acquire(self, move, lease: Lease, verb: str) -> None:
        try:
            got = move(lease.shard_id, self.worker_id, lease.owner,
                       lease.lease_counter)
        except LeaseBusy:
            log.info("worker %s: shard %s is mid-commit; not taken now",
                     self.worker_id, lease.shard_id)
            return
        if got is None:
            # Someone else moved it first; the next cycle sees the new state.
            log.debug("worker %s: shard %s moved before it could be %s",
                      self.worker_id, lease.shard_id, verb)
            return
        with self._lock:
            self._held[got.shard_id] = got.lease_counter
        log.info(
            "worker %s %s shard %s from %s (lease counter %d)",
            self.worker_id, verb, got.shard_id, lease.owner or "nobody",
            got.lease_counter,
        )
        try:
            self._on_acquired(got)
        except Exception:
            # Renewing a lease nobody reads would starve the shard for good;
            # give it back so this or another worker tries again.
            log.exception("worker %s: could not start shard %s; releasing it",
                          self.worker_id, got.shard_id)
            self.forget(got.shard_id)
            table = self._lease_table()
            table.release(got.shard_id, self.worker_id, got.lease_counter)

    # -- the loop -------------------------------------------------------------

    def lease_loop(self) -> None:
        """Run cycles until ``close()``; waits on the stop event between."""
        log.info("worker %s leasing %s shards of %s every %.1fs",
                 self.worker_id, self.selector, self.stream_name,
                 self.settings.cycle_interval_s)
        while not self._stop.is_set():
            try:
                self.run_once()
            except (psycopg.Error, TransientError) as exc:
                self.failed_cycles += 1
                log.warning("worker %s lease cycle failed: %s",
                            self.worker_id, str(exc).strip() or type(exc))
            except Exception:
                # A bug must not silently end leasing: leases would expire
                # while readers run on. Log it whole and keep cycling.
                self.failed_cycles += 1
                log.exception("worker %s lease cycle failed", self.worker_id)
            self._stop.wait(self.settings.cycle_interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.lease_loop, name=f"leases-{self.stream_name}",
            daemon=True,
        )
        self._thread.start()

    def drain(self) -> None:
        """Keep renewing, but take and steal nothing more (shutdown has
        begun and readers are flushing)."""
        self._draining.set()

    def close(self) -> dict[str, int]:
        """Stop the loop, give back every lease, and leave the worker table,
        so other workers take the shards at once. Call after in-flight
        batches are committed. Returns {shard_id: counter} released."""
        self._draining.set()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(CLOSE_JOIN_TIMEOUT_S)
        released: dict[str, int] = {}
        try:
            table = self._lease_table()
            released = table.release_all(self.worker_id)
            table.forget_worker(self.worker_id)
        except (psycopg.Error, TransientError) as exc:
            log.warning(
                "worker %s could not release its leases (they expire on "
                "their own): %s", self.worker_id, str(exc).strip(),
            )
        finally:
            with self._lock:
                self._held.clear()
            self._drop_connection()
        if released:
            log.info("worker %s released %d shards: %s", self.worker_id,
                     len(released), ", ".join(sorted(released)))
        return released
