"""PostgresSink: each batch in one fenced PostgreSQL transaction.

Inside the transaction, in this order: lock the lease row (owner and lease
counter must match, else LeaseLost), load the readings and their samples,
store the rejects, move ven_last_seen, then move the checkpoint and counters
on the lease row and commit. Any other failure rolls all of it back, so a
checkpoint never passes a record that is not stored, counted or rejected.

Partitions for the batch's days are made before that, in their own short
transaction, because DDL inside the batch would hold locks on the parent
tables for the length of a load.
"""

import collections
import logging
from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg.pq import TransactionStatus

from worker.errors import WorkerError, first_line
from worker.records.model import Reading, Reject
from worker.sink.batch import Batch, BatchResult
from worker.sink.fence import already_committed, lock_lease, move_checkpoint
from worker.sink.last_seen import touch_last_seen
from worker.sink.load import PartitionsMissing, load_readings
from worker.sink.partitions import (
    PartitionCache,
    drop_expired_partitions,
    ensure_partitions,
    utc_day,
)
from worker.sink.rejects import insert_rejects
from worker.sink.rows import (
    refused,
    unstorable_key,
    use_c_bytea_dumper,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SinkSettings:
    # Days of readings kept; older daily partitions are dropped. 0 keeps all.
    retention_days: int = 0
    # A week ahead: a reading near midnight never waits on DDL, and a stopped
    # upkeep job leaves a week before loads have to make partitions.
    partitions_ahead_days: int = 7
    # When set, every commit also renews the batch's lease for this long
    # (the worker's lease duration). None leaves renewal to the lease loop.
    lease_duration_s: float | None = None


class PostgresSink:
    """A Sink over one psycopg connection, which it owns from then on and
    closes in ``close()``. The connection must have no transaction open and
    must not be shared."""

    def __init__(
        self, conn: psycopg.Connection, settings: SinkSettings = SinkSettings()
    ):
        self._conn = conn
        use_c_bytea_dumper(conn)
        self.settings = settings
        self._partitions = PartitionCache()
        # Probe for stored readings before the COPY only while duplicates
        # are turning up: on a new sink (a restart or a lease taken over,
        # when an operator's replay or a re-sent backlog is likeliest) and
        # after a batch that met some. Otherwise the COPY goes first and a
        # rare duplicate costs one rolled-back COPY (see ``load``).
        self._expect_duplicates = True

    def close(self) -> None:
        self._conn.close()

    def maintain_partitions(self, today: date) -> None:
        """Make the days ahead and drop expired days, per the settings."""
        made = ensure_partitions(
            self._conn, today, self.settings.partitions_ahead_days
        )
        self._partitions.add(made)
        dropped = drop_expired_partitions(
            self._conn, today, self.settings.retention_days
        )
        self._partitions.forget(dropped)

    def write(self, batch: Batch) -> BatchResult:
        if self._conn.info.transaction_status != TransactionStatus.IDLE:
            # The batch would become a savepoint of someone else's
            # transaction and commit with it, or never.
            raise WorkerError("the sink's connection has a transaction open")
        readings, rejects = _split(batch.items)
        try:
            self._partitions.ensure(
                self._conn, {utc_day(r.timestamp) for r in readings}
            )
            return self._commit_batch(batch, readings, rejects)
        except PartitionsMissing as exc:
            self._partitions.forget(exc.days)
            raise
        except psycopg.OperationalError as exc:
            log.warning(
                "shard %s batch up to %s rolled back (%s): %s",
                batch.lease.shard_id, batch.checkpoint.sequence_number,
                type(exc).__name__, first_line(exc),
            )
            raise

    def _commit_batch(self, batch, readings, rejects) -> BatchResult:
        with self._conn.transaction(), self._conn.cursor() as cur:
            committed = lock_lease(cur, batch.lease)
            if already_committed(batch, committed):
                log.info(
                    "shard %s batch up to %s/%s was committed before (the "
                    "acknowledgement was lost); nothing written again",
                    batch.lease.shard_id, committed.sequence_number,
                    committed.sub_sequence_number,
                )
                return BatchResult(0, len(batch.items), collections.Counter())

            outcome = load_readings(cur, readings, self._expect_duplicates)
            rejects = rejects + outcome.refused

            insert_rejects(cur, batch, rejects)

            touch_last_seen(cur, outcome.stored)

            result = BatchResult(
                stored=len(outcome.stored),
                duplicates=outcome.repeats + outcome.duplicates,
                rejected=collections.Counter(r.reason for r in rejects),
            )
            move_checkpoint(
                cur, batch, result.stored, result.duplicates, len(rejects),
                self.settings.lease_duration_s,
            )
        self._expect_duplicates = outcome.duplicates > 0
        return result


def _split(items) -> tuple[list[Reading], list[Reject]]:
    """Readings and rejects apart; a reading whose key PostgreSQL could not
    even be asked about is refused here."""
    readings, rejects = [], []
    for item in items:
        if isinstance(item, Reject):
            rejects.append(item)
            continue
        why = unstorable_key(item)
        if why is None:
            readings.append(item)
        else:
            rejects.append(refused(item, why))
    return readings, rejects
