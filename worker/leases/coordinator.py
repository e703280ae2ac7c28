"""One worker's side of lease balancing: the cycle and the loop that runs it.

What the runtime uses:

- ``run_once()``: one cycle, for a runtime that drives its own control loop
  (``start()`` runs cycles in a thread instead). Raises TransientError when
  the database fails; the next call opens a new connection.
- ``sync_shards(shards)``: discovery's shard list in; missing lease rows are
  created, and rows of ended shards that left the stream are pruned.
- ``held()``: {shard_id: lease_counter} this worker holds right now; the
  counter is what the sink's fenced commit must present.
- ``lease_row(shard_id)``: the lease row as a dict (counter, checkpoint,
  reset position, parents), to start a reader from.
- ``on_acquired(lease)`` / ``on_lost(shard_id, counter)``: optional
  callbacks, run in the cycle's thread, for a runtime that would rather be
  told than poll ``held()``. A lease is lost when its renewal finds it moved
  (taken after expiry, stolen, reset by an operator); the reader must stop,
  and its in-flight batch fails its fence anyway.
- ``forget(shard_id)``: the runtime dropped a shard on its own (a commit
  raised LeaseLost, a consumer failed, the shard ended). A lease still in
  this worker's name is then taken again under a new counter next cycle (a
  retry), or given back if the shard ended.
- ``drain()``: shutdown has begun; keep renewing, take nothing new.
- ``release_all()``: give every lease back and leave the worker table, so
  other workers take the shards at once; ``close()`` also stops the thread.

A failed cycle is logged and the next one starts afresh; leases that could
not be renewed expire on their own, and the fence keeps storage exactly once
meanwhile.
"""

import dataclasses
import logging
import random
import threading
from collections.abc import Callable, Iterable

import psycopg

from worker.errors import ConfigError, TransientError
from worker.kinesis.selector import ALL_SHARDS, ShardSelector
from worker.leases.balance import plan_cycle
from worker.leases.model import Lease, ShardLike
from worker.leases.settings import LeaseSettings
from worker.leases.table import LeaseBusy, LeaseTable

log = logging.getLogger(__name__)

# Longest wait for the loop's thread to finish its cycle on close.
CLOSE_JOIN_TIMEOUT_S = 30.0

# How far before "now" a LATEST start is pinned (see LeaseTable.pin_start).
LATEST_PIN_MARGIN_S = 5.0


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

        # Guards _held (read by the runtime's threads) and serialises use of
        # the one lease connection.
        self._lock = threading.Lock()
        self._db_lock = threading.RLock()
        self._held: dict[str, int] = {}
        self._conn: psycopg.Connection | None = None
        self._table: LeaseTable | None = None
        self._draining = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed_cycles = 0

    # -- what the runtime reads ------------------------------------------------

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def forget(self, shard_id: str, counter: int | None = None) -> None:
        """Stop renewing a lease; with ``counter``, only if it is still the
        one held (the shard may have been taken again since)."""
        with self._lock:
            if counter is None or self._held.get(shard_id) == counter:
                self._held.pop(shard_id, None)

    def database_now(self):
        """The database's clock, the one every lease time is measured by."""
        return self._with_table(lambda table: table.now())

    def sync_shards(self, shards: Iterable[ShardLike],
                    listed_at=None) -> list[str]:
        """Bring the lease rows in line with discovery; returns new rows.
        ``listed_at`` (database time taken before the listing) keeps rows
        created since then out of the prune."""
        return self._with_table(self._sync, list(shards), listed_at)

    def lease_row(self, shard_id: str) -> dict | None:
        lease = self._with_table(lambda table: table.get(shard_id))
        return None if lease is None else dataclasses.asdict(lease)

    def pin_start(self, shard_id: str, counter: int):
        """See ``LeaseTable.pin_start``: the time a LATEST start is pinned
        to, or None."""
        return self._with_table(lambda table: table.pin_start(
            shard_id, self.worker_id, counter, LATEST_PIN_MARGIN_S))

    # -- the lease connection ----------------------------------------------------

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

    def _with_table(self, step, *args):
        """Run one step on the lease connection. A database failure drops
        the connection (the next step opens a new one) and surfaces as a
        TransientError; so does a failed reconnect, which the connect
        function reports as a ConfigError."""
        with self._db_lock:
            try:
                return step(self._lease_table(), *args)
            except (psycopg.Error, ConfigError) as exc:
                self._drop_connection()
                raise TransientError(
                    "lease database call failed: "
                    f"{str(exc).strip() or type(exc).__name__}"
                ) from exc

    # -- one cycle -----------------------------------------------------------------

    def run_once(self) -> None:
        """Heartbeat, renew what is held, give back ended shards, then take
        free leases or steal one."""
        self._with_table(self._cycle)

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
            self._acquire(table, table.take, lease, "took")
        for lease in plan.steal:
            self._acquire(table, table.steal, lease, "stole")

        table.prune_workers(self.settings.dead_worker_retention_s)

    def _sync(self, table: LeaseTable, shards: list,
              listed_at=None) -> list[str]:
        created = table.ensure_rows(shards)
        if created:
            log.info("stream %s: lease rows created for %s",
                     self.stream_name, ", ".join(created))
        for shard_id, had_ended in table.prune_gone(
                (shard.shard_id for shard in shards), listed_at):
            if had_ended:
                log.info("stream %s: shard %s aged out of the stream; its "
                         "lease row is removed", self.stream_name, shard_id)
            else:
                log.warning("stream %s: shard %s left the stream before it "
                            "was read to the end (its records expired); "
                            "its children may start", self.stream_name,
                            shard_id)
        return created

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
        try:
            released = table.release(lease.shard_id, self.worker_id,
                                     lease.lease_counter)
        except LeaseBusy:
            return  # the final commit is still going; next cycle
        self.forget(lease.shard_id)
        if released:
            log.info("worker %s released ended shard %s",
                     self.worker_id, lease.shard_id)

    def _acquire(self, table: LeaseTable, move, lease: Lease,
                 verb: str) -> None:
        try:
            got = move(lease.shard_id, self.worker_id, lease.owner,
                       lease.lease_counter)
        except LeaseBusy:
            log.info("worker %s: shard %s is mid-commit; next cycle",
                     self.worker_id, lease.shard_id)
            return
        if got is None:
            # Someone else moved it first; the next cycle sees the new state.
            log.debug("worker %s: shard %s changed hands first; skipped",
                      self.worker_id, lease.shard_id)
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
            table.release(got.shard_id, self.worker_id, got.lease_counter)

    # -- the loop ------------------------------------------------------------------

    def lease_loop(self) -> None:
        """Run cycles until ``close()``; waits on the stop event between."""
        log.info("worker %s leasing %s shards of %s every %.1fs",
                 self.worker_id, self.selector, self.stream_name,
                 self.settings.cycle_interval_s)
        while not self._stop.is_set():
            try:
                self.run_once()
            except TransientError as exc:
                self.failed_cycles += 1
                log.warning("worker %s lease cycle failed: %s",
                            self.worker_id, exc)
            except Exception:
                # A bug must not silently end leasing while readers run on.
                # Log it whole and keep cycling; leases that cannot be
                # renewed expire and the fence protects the data.
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

    # -- giving everything back ----------------------------------------------------

    def release_all(self) -> dict[str, int]:
        """Give back every lease and leave the worker table, so other
        workers take the shards at once. Call after in-flight batches are
        committed. Returns {shard_id: new counter}; raises TransientError
        when the database cannot be reached (the leases then expire)."""
        self._draining.set()
        try:
            released = self._with_table(self._leave)
        finally:
            with self._lock:
                self._held.clear()
        if released:
            log.info("worker %s released %d shards: %s", self.worker_id,
                     len(released), ", ".join(sorted(released)))
        return released

    def _leave(self, table: LeaseTable) -> dict[str, int]:
        try:
            released = table.release_all(self.worker_id)
        except LeaseBusy:
            # A consumer is still committing on one of the rows. Give back
            # the others one by one; that one expires on its own.
            released = {}
            for lease in table.list():
                if lease.owner != self.worker_id:
                    continue
                try:
                    if table.release(lease.shard_id, self.worker_id,
                                     lease.lease_counter):
                        released[lease.shard_id] = lease.lease_counter + 1
                except LeaseBusy:
                    log.warning("worker %s: shard %s still committing; its "
                                "lease is left to expire", self.worker_id,
                                lease.shard_id)
        table.forget_worker(self.worker_id)
        return released

    def close(self) -> dict[str, int]:
        """Stop the loop thread, then ``release_all()``; never raises for a
        database that is gone (the leases expire on their own)."""
        self._draining.set()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(CLOSE_JOIN_TIMEOUT_S)
        try:
            return self.release_all()
        except TransientError as exc:
            log.warning("worker %s could not release its leases (they "
                        "expire on their own): %s", self.worker_id, exc)
            return {}
        finally:
            with self._db_lock:
                self._drop_connection()
