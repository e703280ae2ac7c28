"""One owned shard, end to end: fetch pages, decode them, store each as one
fenced batch, and stop cleanly.

The next page is fetched and decoded while the current one is being written
(one page ahead, never more), so reading, decoding and storing overlap
without letting a backlog pile up in memory: the decode of one batch runs
while PostgreSQL works through the COPY of the one before. A shared
``ByteBudget`` caps the bytes held across all shards of the process.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tenacity import Retrying, retry_if_exception, wait_random_exponential

from worker.db.connect import TRANSIENT_DB_ERRORS
from worker.errors import LeaseLost
from worker.kinesis.client import Page
from worker.kinesis.reader import ShardReader
from worker.records.model import Reading
from worker.runtime.decode_page import decode_page
from worker.sink.batch import SHARD_END, Batch, Checkpoint, LeaseToken

log = logging.getLogger(__name__)

# Database retries: a failover or restart takes seconds to a minute; back off
# up to 15 s between attempts and keep trying until the lease is lost or the
# worker stops. The batch is never dropped and never checkpointed unstored.
DB_BACKOFF_INITIAL_S = 0.5
DB_BACKOFF_MAX_S = 15.0

# While caught up, pages are mostly empty. Store one anyway this often so the
# lease row's lag figure (read by `status`) does not go stale.
LAG_REFRESH_INTERVAL_S = 10.0


# What a fetched page costs in memory until it is stored, as a multiple of
# its record bytes: the bytes themselves plus the decoded readings, samples
# and JSON text (measured: a 10,000-record page of 8-circuit readings,
# 13.2 MiB of records, holds 77 MiB of Python objects once decoded, 5.8
# times). The fetch's own transient copies fit inside the same reservation:
# the answer's JSON text, its parsed form and the base64-decoded records peak
# at about 4.5 times the record bytes, and are freed before decoding starts.
PAGE_MEMORY_FACTOR = 6

# Pages a shard holds at once: the one being stored and the one fetched and
# decoded ahead of it. The budget is split into this many pages per shard.
PAGES_PER_SHARD = 2

# Record size assumed before a shard's first page shows the real one: twice a
# typical 8-circuit reading (about 1.3 KB), so a first page is more likely to
# come in under its share than over it.
FIRST_RECORD_ESTIMATE = 2 * 1024


class ByteBudget:
    """Memory held by fetched-but-unstored pages, across all shards.

    A fetch reserves its expected cost first and waits while that would go
    over the limit, so shards cannot all fetch at once and overshoot by a
    page each. One page may always be in flight, however large, or a limit
    below one page would stop reading altogether.

    Consumers ``join`` while they run, and each sizes its pages to its
    ``share`` (a fair part, or more while others hold little), so shards
    ask for pages that fit rather than wait on pages that do not.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._used = 0
        self._members = 0
        self._cond = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    def join(self) -> None:
        with self._cond:
            self._members += 1

    def leave(self) -> None:
        with self._cond:
            self._members -= 1

    def share(self) -> int:
        """Bytes one page may cost: the shard's fair part of the budget, or
        its part of what is free now when that is more. Shards that hold
        little (caught up, between pages) leave room a shard with a backlog
        may use; ``reserve`` still keeps the total within the limit."""
        fair = self.limit // (PAGES_PER_SHARD * max(1, self._members))
        free = (self.limit - self._used) // PAGES_PER_SHARD
        return max(fair, free)

    def reserve(self, n: int, stopping) -> bool:
        """Take ``n`` once it fits; False (nothing taken) when ``stopping()``
        says so first."""
        with self._cond:
            while (self._used and self._used + n > self.limit
                   and not stopping()):
                self._cond.wait(0.5)
            if stopping():
                return False
            self._used += n
            return True

    def adjust(self, n: int) -> None:
        """Correct a reservation by ``n`` (may be negative) once the page's
        real cost is known."""
        with self._cond:
            self._used += n
            self._cond.notify_all()

    def release(self, n: int) -> None:
        self.adjust(-n)


def page_cost(page: Page) -> int:
    return page.size_bytes * PAGE_MEMORY_FACTOR


@dataclass(slots=True)
class Fetched:
    """One page, decoded: what a batch is made of."""

    page: Page
    items: list
    # Checkpoint after the page's last record; None for an empty page.
    last: Checkpoint | None


def _is_transient_db_error(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_DB_ERRORS)


class ShardConsumer(threading.Thread):
    """Reads and stores one shard until it ends, the lease is lost, or the
    worker stops. Hooks report back to the runtime:

    - ``on_done(consumer, reason)``: reason is ``"shard_end"``,
      ``"lease_lost"``, ``"stopped"`` or ``"failed"``.
    - ``observer``: an object with ``batch_stored(shard_id, result, page,
      seconds)``, ``retry(cause)`` and ``progress(shard_id)``; may be None.
    """

    def __init__(self, lease: LeaseToken, reader: ShardReader, sink_factory,
                 decode_policy, budget: ByteBudget, stop: threading.Event,
                 on_done, observer=None,
                 committed: Checkpoint | None = None):
        super().__init__(name=f"shard-{lease.shard_id}", daemon=True)
        self.lease = lease
        self._reader = reader
        self._sink_factory = sink_factory
        self._sink = None
        self._policy = decode_policy
        self._budget = budget
        # Global stop (shutdown) or this shard's own stop (lease moved away).
        self._global_stop = stop
        self.own_stop = threading.Event()
        self._on_done = on_done
        self._observer = observer
        self._last_write = 0.0
        self.batches_committed = 0
        # What one record of this shard costs in memory, from its last page
        # that had records; sizes the next page to the budget's share.
        self._record_cost = FIRST_RECORD_ESTIMATE * PAGE_MEMORY_FACTOR
        self._last_lag: int | None = None
        # The checkpoint last committed for this shard (None: none yet).
        self._committed = committed

    # -- lifecycle ---------------------------------------------------------

    def stopping(self) -> bool:
        return self._global_stop.is_set() or self.own_stop.is_set()

    def run(self) -> None:
        reason = "failed"
        self._budget.join()
        try:
            reason = self._consume_routine()
        except LeaseLost:
            log.info("shard %s lease lost (counter %d); dropping it",
                     self.lease.shard_id, self.lease.lease_counter)
            reason = "lease_lost"
        except Exception as exc:
            if self._global_stop.is_set():
                # A retry cut short by shutdown: nothing is lost, the next
                # owner resumes from the last committed checkpoint.
                log.info("shard %s consumer stopped during a retry: %s",
                         self.lease.shard_id, exc)
                reason = "stopped"
            else:
                log.exception("shard %s consumer failed; it restarts from "
                              "the last committed checkpoint",
                              self.lease.shard_id)
        finally:
            self._budget.leave()
            self._close_sink()
            self._on_done(self, reason)

    def _consume_routine(self) -> str:
        shard = self.lease.shard_id
        with ThreadPoolExecutor(1, thread_name_prefix=f"fetch-{shard}") as pool:
            pending = pool.submit(self._fetch)
            try:
                while True:
                    fetched, pending = pending.result(), None
                    if fetched is None:
                        return "stopped"
                    page = fetched.page
                    ended = page.next_iterator is None
                    if not ended and not self.stopping():
                        pending = pool.submit(self._fetch)
                    try:
                        self._store(fetched, ended)
                    finally:
                        self._budget.release(page_cost(page))
                    children = page.child_shard_ids
                    # The stored page goes now, not when the next one
                    # arrives: its bytes are back in the budget, and another
                    # shard may already be fetching with them.
                    fetched = page = None
                    if ended:
                        log.info("shard %s reached SHARD_END; children: %s",
                                 shard, ", ".join(children) or "none")
                        return "shard_end"
                    if pending is None:
                        return "stopped"
            finally:
                # Leaving early (lease lost, failure): the page fetched ahead
                # is dropped unstored; its bytes go back to the budget. The
                # stop cuts that fetch short (a wait for budget, a backoff),
                # so the shard is free to restart sooner.
                if pending is not None:
                    self.own_stop.set()
                self._discard(pending)

    def _discard(self, pending) -> None:
        if pending is None:
            return
        try:
            fetched = pending.result()
        except Exception:  # the fetch failed: nothing was held
            return
        if fetched is not None:
            self._budget.release(page_cost(fetched.page))

    def page_limit(self) -> int:
        """Records the next GetRecords call asks for: as many as fit in this
        shard's share of the budget at the size its records last had, and
        no more than MAX_RECORDS. At least one, so a shard of records larger
        than its share still moves, one record a page."""
        fits = self._budget.share() // self._record_cost
        return max(1, min(fits, self._reader.max_records))

    def _fetch(self) -> Fetched | None:
        # Pace first, holding nothing: a caught-up shard waits out its idle
        # interval here, not inside a reservation other shards wait for.
        self._reader.wait_turn()
        limit = self.page_limit()
        estimate = limit * self._record_cost
        if not self._budget.reserve(estimate, self.stopping):
            return None
        try:
            page = self._reader.fetch_next(limit)
        except BaseException:
            self._budget.release(estimate)
            raise
        cost = page_cost(page)
        self._budget.adjust(cost - estimate)
        # An empty page says nothing about the next one's record size.
        if page.records:
            self._record_cost = max(1, cost // len(page.records))
        try:
            if self._observer:
                self._observer.progress(self.lease.shard_id)
            items, last = decode_page(page.records, self.lease.shard_id,
                                      self._policy)
        except BaseException:
            self._budget.release(cost)
            raise
        return Fetched(page, items, last)

    # -- storing -----------------------------------------------------------

    def _store(self, fetched: Fetched, ended: bool) -> None:
        shard = self.lease.shard_id
        page, items, last = fetched.page, fetched.items, fetched.last
        if not page.records and not ended and not self._lag_is_stale(page):
            return
        if ended:
            checkpoint = Checkpoint(SHARD_END, 0)
        else:
            # An empty page refreshes only the lag, at the same checkpoint.
            checkpoint = last or self._committed
        if checkpoint is None:
            return
        batch = Batch(self.lease, items, checkpoint,
                      page.millis_behind_latest)
        started = time.monotonic()
        result = self._write_with_retry(batch)
        elapsed = time.monotonic() - started
        self._last_write = time.monotonic()
        self._last_lag = page.millis_behind_latest
        self._committed = checkpoint
        self.batches_committed += 1
        log.debug("shard %s stored batch up to %s: %d stored, %d duplicates, "
                  "%d rejected in %.3fs", shard,
                  checkpoint.sequence_number,
                  result.stored, result.duplicates,
                  sum(result.rejected.values()), elapsed)
        if self._observer:
            readings = [i for i in items if isinstance(i, Reading)]
            newest = max((r.timestamp for r in readings), default=None)
            samples = sum(len(r.samples) for r in readings)
            self._observer.batch_stored(shard, result, page, elapsed,
                                        newest=newest, samples=samples)

    def _lag_is_stale(self, page: Page) -> bool:
        return (page.millis_behind_latest != self._last_lag
                and time.monotonic() - self._last_write
                >= LAG_REFRESH_INTERVAL_S)

    def _write_with_retry(self, batch: Batch):
        def before_sleep(state) -> None:
            exc = state.outcome.exception()
            log.warning("shard %s batch not stored (%s: %s); retrying the "
                        "same batch", self.lease.shard_id,
                        type(exc).__name__, str(exc).strip()[:200])
            self._close_sink()
            if self._observer:
                self._observer.retry("database")

        # Stop retrying only for shutdown: the lease-loss path raises
        # LeaseLost from the fenced commit itself.
        retrying = Retrying(
            retry=retry_if_exception(_is_transient_db_error),
            wait=wait_random_exponential(multiplier=DB_BACKOFF_INITIAL_S,
                                         max=DB_BACKOFF_MAX_S),
            stop=lambda state: self._global_stop.is_set(),
            sleep=self._global_stop.wait,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._write_once, batch)

    def _write_once(self, batch: Batch):
        if self._sink is None:
            self._sink = self._sink_factory()
        return self._sink.write(batch)

    def _close_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except Exception:  # closing a broken connection may fail too
                log.debug("closing sink failed", exc_info=True)
