"""COPY of a batch's readings and their samples, inside the batch transaction.

Readings already stored are dropped by a probe of the primary key. The
probe runs before the COPY only when the caller expects duplicates (see
``PostgresSink``): on a shard in steady state almost no batch holds one,
and the probe costs about a tenth of the load on both sides. Without it,
or when a concurrent worker stores one of the rest before our COPY lands,
the unique violation rolls back to a savepoint, the probe runs, and the
COPY is retried without what it found. A value PostgreSQL refuses is pinned on its
reading by splitting the refused rows in halves, each half in its own
savepoint; that reading becomes a reject and every other one is stored.

Splitting costs about two extra COPYs of the batch per refused reading,
cheap for the odd bad value. NOTE: a refusal that hits every reading (say an
operator's CHECK that nothing passes) costs about twice as many small COPYs
as the batch has readings: 30 s for a batch of 10,000 on the 2-core
development machine. The readings still end up as rejects and the shard
moves on.

Rows are copied in (ven_id, timestamp) order. Two workers loading
overlapping readings then meet each other's uncommitted keys in the same
order, so one waits for the other instead of both waiting in a deadlock.
(Copies loaded in place of refused ones are the exception; see
``_load_in_place_of_refused``.)
"""

import collections
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import psycopg
from psycopg import sql
from psycopg.errors import (
    ProgramLimitExceeded,
    StatementTooComplex,
    UniqueViolation,
)

from worker.errors import TransientError
from worker.records.model import Reading, Reject
from worker.sink.partitions import missing_days, utc_day
from worker.sink.rows import (
    SAMPLE_COPY_COLUMNS,
    SAMPLE_COPY_TYPES,
    TELEMETRY_COPY_COLUMNS,
    TELEMETRY_COPY_TYPES,
    Row,
    Unsendable,
    all_sample_rows,
    reading_key,
    refused,
    split_repeats,
    telemetry_rows,
    write_rows,
)

log = logging.getLogger(__name__)

# What PostgreSQL raises for a value it will not hold: classes 22 and 23 (out
# of range, bad text, too long, a CHECK or NOT NULL an operator added) and
# class 54 (a value too big for an index entry, such as a long random
# eventId; a value too complex to process).
# psycopg files 54000 under OperationalError, which would otherwise read as
# "retry the batch" and stall the shard on that one record forever.
# Unsendable is the client's own refusal of a value (see ``rows``).
# Anything else (a lost connection, a missing column) fails the batch.
REFUSALS = (
    psycopg.DataError,
    psycopg.IntegrityError,
    ProgramLimitExceeded,
    StatementTooComplex,
    Unsendable,
)


def _copy_sql(table: str, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
    )


_COPY_TELEMETRY = _copy_sql("ven_telemetry", TELEMETRY_COPY_COLUMNS)
_COPY_SAMPLES = _copy_sql("ven_load_samples", SAMPLE_COPY_COLUMNS)

# LATERAL with LIMIT 1 keeps the plan an index probe per key, however many
# keys the batch has and however large the partitions grow.
_PROBE_SQL = """
SELECT p.n
FROM unnest(%s::text[], %s::timestamptz[]) WITH ORDINALITY AS p(ven_id, ts, n)
CROSS JOIN LATERAL (
    SELECT 1 FROM ven_telemetry t
    WHERE t.ven_id = p.ven_id AND t."timestamp" = p.ts
    LIMIT 1
) AS stored
"""

# One array in binary rather than a row per id: psycopg's C loader reads
# 10,000 ids in one go.
_ALLOCATE_IDS_SQL = (
    "SELECT array_agg(nextval('ven_telemetry_id_seq')) "
    "FROM generate_series(1, %s)"
)


class PartitionsMissing(TransientError):
    """A day the sink believed partitioned has no partition (dropped by
    retention or by hand). Trying the batch again creates it."""

    def __init__(self, days: set[date]):
        super().__init__(
            "no partition for " + ", ".join(map(str, sorted(days)))
        )
        self.days = days


@dataclass(slots=True)
class LoadOutcome:
    stored: list[Reading] = field(default_factory=list)
    # Readings found already in ven_telemetry.
    duplicates: int = 0
    # Repeats inside the batch of a reading stored by it or before it.
    repeats: int = 0
    refused: list[Reject] = field(default_factory=list)
    # Per key refused in one round of loading: the refused copy's payload
    # and the reason, so an identical repeat is refused without a COPY.
    refusals: dict[tuple, tuple[str, str]] = field(default_factory=dict)


def load_readings(cur: psycopg.Cursor, readings: Sequence[Reading],
                  probe_first: bool = True) -> LoadOutcome:
    """Store ``readings`` and their samples, one reading per key: the first
    copy of each key is loaded, and a later copy only when PostgreSQL
    refused every copy before it. Such a copy may differ (a device
    re-sending a corrected reading) and is then the reading's only storable
    form; every other repeat is counted.

    ``probe_first`` drops stored readings before the COPY; without it they
    are found when the COPY meets them, at the cost of that COPY.
    """
    first, repeats = split_repeats(readings)
    out = _load_each_once(cur, first, probe_first)
    if out.refusals and repeats:
        _load_in_place_of_refused(cur, out, repeats, probe_first)
    else:
        out.repeats = len(repeats)
    return out


def _load_in_place_of_refused(cur, out: LoadOutcome, repeats: list[Reading],
                              probe_first: bool) -> None:
    """Load the next copy of each refused reading, round after round, and
    count the repeats left over.

    A copy whose payload is the refused one's decodes to the same rows, so
    it is refused alike without a COPY: a device re-sending a bad reading
    in a loop costs one refusal, not one round per copy. The rounds follow
    the batch's first COPY in the same transaction, so their keys are taken
    out of (ven_id, timestamp) order: a writer holding one of them may
    deadlock with this batch, which then rolls back and is tried again.
    """
    waiting = collections.defaultdict(collections.deque)
    for r in repeats:
        waiting[reading_key(r)].append(r)
    refusals = out.refusals
    while refusals:
        tries = []
        for key, (payload, detail) in refusals.items():
            queue = waiting[key]
            while queue:
                copy = queue.popleft()
                if copy.raw_payload != payload:
                    tries.append(copy)
                    break
                out.refused.append(refused(copy, detail))
        again = _load_each_once(cur, tries, probe_first)
        out.stored += again.stored
        out.duplicates += again.duplicates
        out.refused += again.refused
        refusals = again.refusals
    out.repeats = sum(map(len, waiting.values()))


def _load_each_once(cur: psycopg.Cursor, readings: list[Reading],
                    probe_first: bool) -> LoadOutcome:
    """``load_readings`` for readings with no two of the same key."""
    out = LoadOutcome()
    stored = _stored_positions(cur, readings) if probe_first else set()
    out.duplicates += len(stored)
    fresh = sorted(_without(readings, stored), key=reading_key)
    if not fresh:
        return out

    ids = _allocate_ids(cur, len(fresh))
    rows = list(zip(ids, fresh))

    rest, error = _copy_or_refusal(cur, rows, out)
    if error is not None:
        _raise_if_partitions_missing(cur, rest, error)
        _isolate(cur, rest, error, out)
    return out


def _stored_positions(cur, readings: Sequence[Reading]) -> set[int]:
    """Positions in ``readings`` whose key is already in ven_telemetry."""
    if not readings:
        return set()
    cur.execute(
        _PROBE_SQL,
        ([r.ven_id for r in readings], [r.timestamp for r in readings]),
    )
    return {n - 1 for (n,) in cur.fetchall()}


def _without(items: list, positions: set[int]) -> list:
    if not positions:
        return items
    return [x for i, x in enumerate(items) if i not in positions]


def _allocate_ids(cur: psycopg.Cursor, count: int) -> list[int]:
    cur.execute(_ALLOCATE_IDS_SQL, (count,), binary=True)
    return cur.fetchone()[0]


def _copy_once(cur: psycopg.Cursor, rows: Sequence[Row]) -> None:
    with cur.connection.transaction():  # a savepoint inside the batch
        with cur.copy(_COPY_TELEMETRY) as copy:
            copy.set_types(TELEMETRY_COPY_TYPES)
            write_rows(copy, telemetry_rows(rows), TELEMETRY_COPY_COLUMNS,
                       TELEMETRY_COPY_TYPES)
        with cur.copy(_COPY_SAMPLES) as copy:
            copy.set_types(SAMPLE_COPY_TYPES)
            write_rows(copy, all_sample_rows(rows), SAMPLE_COPY_COLUMNS,
                       SAMPLE_COPY_TYPES)


def _copy_or_refusal(cur, rows: list[Row], out: LoadOutcome):
    """COPY ``rows``, dropping any that another worker stores meanwhile.

    Returns the rows left unstored and the error that refused them, or an
    empty list and None once everything left is stored.
    """
    while rows:
        try:
            _copy_once(cur, rows)
        except UniqueViolation as exc:
            stored = _stored_positions(cur, [r for _, r in rows])
            if not stored:
                return rows, exc
            first = rows[min(stored)][1].meta
            log.info(
                "shard %s: the COPY met %d readings (the first at sequence "
                "%s) already stored by an earlier batch or another worker; "
                "counted as duplicates", first.shard_id if first else "?", len(stored),
                first.sequence_number if first else "?",
            )
            out.duplicates += len(stored)
            rows = _without(rows, stored)
            continue
        except REFUSALS as exc:
            return rows, exc
        out.stored.extend(r for _, r in rows)
        break
    return [], None


def _isolate(cur, rows: list[Row], error: Exception, out: LoadOutcome):
    """Split refused rows until each refusal falls on one reading."""
    if len(rows) == 1:
        reading = rows[0][1]
        detail = describe(error)
        out.refused.append(refused(reading, detail))
        out.refusals[reading_key(reading)] = (reading.raw_payload, detail)
        meta = reading.meta
        log.warning(
            "shard %s sequence %s/%s: the reading of %r at %s cannot be "
            "stored; kept as a reject: %s",
            meta.shard_id if meta else "?",
            meta.sequence_number if meta else "?",
            meta.sub_sequence_number if meta else "?",
            reading.ven_id, reading.timestamp, detail,
        )
        return
    middle = len(rows) // 2
    for half in (rows[:middle], rows[middle:]):
        rest, half_error = _copy_or_refusal(cur, half, out)
        if half_error is not None:
            _isolate(cur, rest, half_error, out)


def _raise_if_partitions_missing(cur, rows: Iterable[Row], error) -> None:
    days = {utc_day(r.timestamp) for _, r in rows}
    gone = missing_days(cur, days)
    if gone:
        raise PartitionsMissing(gone) from error


def describe(error: Exception) -> str:
    """The database's message for a refusal, with the column it names."""
    diag = getattr(error, "diag", None)
    message = diag.message_primary if diag else None
    if not message:
        return str(error).strip()
    parts = [message]
    if diag.message_detail:
        parts.append(diag.message_detail)
    if diag.context:
        parts.append(diag.context.strip())
    return "; ".join(parts)
