"""``ven-worker redrive``: decode the records kept in ``ingest_rejects`` again,
with this build's decoder and the current settings, and store those that
now decode.

A reject keeps its record byte for byte so that nothing is lost to a
decoder bug or to a limit set too tight (MAX_FUTURE_SKEW_S,
MAX_RECORD_BYTES). Once the bug is fixed or the limit raised, a redrive
finishes the job: a reject whose reading is now stored, or was stored
already, leaves the table; one that still fails stays exactly as it was,
with its original reason. A KPL aggregate kept whole because it could not
be split is left alone: it holds many records, not one reading. Nothing is
stored twice, whether the redrive runs twice, two run at once, or workers
store the same reading meanwhile.

The rejects present when it starts are read in id order, a page at a time,
each shard's part of a page in its own transaction (see
``worker.sink.redrive``), so an interrupted redrive keeps what it finished
and the next one picks up the rest.
"""

import collections
import logging
import sys
import time
from dataclasses import dataclass, field

from worker.db.connect import (
    TRANSIENT_DB_ERRORS,
    connect,
    lease_row_session,
)
from worker.errors import ConfigError, WorkerError, first_line
from worker.kinesis.kpl import MAGIC as KPL_MAGIC
from worker.ops.leases_view import check_tables
from worker.ops.render import table
from worker.records import RecordMeta, decode_record
from worker.records.model import Reading, Reason
from worker.records.policy import DecodePolicy, policy_from
from worker.sink.partitions import PartitionCache
from worker.sink.redrive import RETIRED, Fate, Redriven, store_redriven
from worker.sink.rows import use_c_bytea_dumper

log = logging.getLogger(__name__)

# A page is at most this many rejects and, past its first reject, at most
# this many stored bytes of them. A gzip record inflates to up to four times
# MAX_RECORD_BYTES however small it is stored, so decoding also stops once
# the page's readings hold PAGE_DECODED_CHARS of JSON text (their samples
# take a few times that again in memory).
PAGE_ROWS = 500
PAGE_BYTES = 4 * 1024 * 1024
PAGE_DECODED_CHARS = 16 * 1024 * 1024

_PROGRESS_EVERY_S = 5.0

_FILTER = """
WHERE stream_name = %(stream)s
  AND (%(reasons)s::text[] IS NULL OR reason_code = ANY(%(reasons)s))
  AND (%(shard)s::text IS NULL OR shard_id = %(shard)s)
"""

_EXTENT_SQL = "SELECT count(*), max(id) FROM ingest_rejects" + _FILTER

# A reject without an arrival time is judged as of the moment it was
# rejected, the nearest time known to when it arrived, not as of the
# redrive; a reading stored from it keeps that time as its arrival (in
# ven_telemetry.arrived_at and ven_last_seen.last_seen_at).
_PAGE_SQL = """
SELECT id, shard_id, sequence_number, sub_sequence_number,
       COALESCE(arrived_at, rejected_at), raw_data, reason_code
FROM (
    SELECT *, sum(octet_length(raw_data)) OVER (ORDER BY id) AS running
    FROM ingest_rejects
""" + _FILTER + """
      AND id > %(after)s AND id <= %(last)s
    ORDER BY id
    LIMIT %(rows)s
) AS page
WHERE running - octet_length(raw_data) < %(bytes)s
ORDER BY id
"""

# The summary's columns: what became of a reject that was not still
# rejected.
_HEADINGS = {Fate.STORED: "STORED", Fate.DUPLICATE: "DUPLICATES",
             Fate.TAKEN: "LEFT TO ANOTHER RUN"}
_DRY_RUN_COLUMN = "decodes now"


@dataclass
class Tally:
    """Per original reason: how many rejects were looked at, and what
    became of them."""

    seen: collections.Counter = field(default_factory=collections.Counter)
    fates: dict = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    # Still rejected, by the reason the decoder or the database gives now.
    still: collections.Counter = field(default_factory=collections.Counter)

    @property
    def total(self) -> int:
        return sum(self.seen.values())

    def count(self, fate: str) -> int:
        """Rejects of every original reason that met ``fate``."""
        return sum(fates[fate] for fates in self.fates.values())

    def add(self, part: "ShardPart", fates: dict) -> None:
        """Count one shard's part of a page, once its transaction is over."""
        self.seen.update(part.reasons.values())
        self.still.update(part.still)
        for reject_id, fate in fates.items():
            self.fates[part.reasons[reject_id]][fate] += 1
            if fate is Fate.REFUSED:
                self.still[Reason.DATABASE_REFUSED.value] += 1


@dataclass
class ShardPart:
    """One shard's rejects in a page: the reason each was rejected for,
    those that decode now, and why the others still fail."""

    reasons: dict = field(default_factory=dict)
    items: list = field(default_factory=list)
    still: collections.Counter = field(default_factory=collections.Counter)


def check_reasons(reasons: list[str] | None) -> list[str] | None:
    """The reason codes asked for, or ConfigError naming the known ones."""
    if not reasons:
        return None
    known = {reason.value for reason in Reason}
    unknown = [r for r in reasons if r not in known]
    if unknown:
        raise ConfigError(
            f"redrive: unknown reason code {', '.join(unknown)} (known: "
            f"{', '.join(sorted(known))})")
    return sorted(set(reasons))


def redrive(settings, reasons: list[str] | None = None,
            shard: str | None = None, dry_run: bool = False) -> int:
    """Redrive the stream's rejects (those with ``reasons`` and from
    ``shard`` when given); prints what became of them. ``dry_run`` only
    decodes."""
    filters = {"stream": settings.stream_name,
               "reasons": check_reasons(reasons), "shard": shard}
    # Autocommit, so each ``transaction()`` is a real transaction and not a
    # savepoint of one that lasts the whole run. Its transactions lock lease
    # rows as a worker's batch does, so they get the same server limits.
    with connect(settings.database_url, settings.pg_schema, autocommit=True,
                 session=lease_row_session(settings.lease_duration_s)
                 ) as conn:
        check_tables(conn, settings.database_url, settings.pg_schema)
        use_c_bytea_dumper(conn)
        total, last = conn.execute(_EXTENT_SQL, filters).fetchone()
        tally = Tally()
        try:
            _redrive_all(conn, {**filters, "last": last or 0},
                         policy_from(settings), dry_run, total, tally)
        except TRANSIENT_DB_ERRORS as exc:
            print_tally(settings.stream_name, tally, dry_run)
            raise WorkerError(
                f"redrive stopped after {tally.total:,} of {total:,} rejects "
                f"on a database error ({first_line(exc)}); what it finished "
                "is kept, run it again to go on") from exc
    if not dry_run:
        stored, duplicates = map(tally.count, RETIRED)
        log.info("redrive of stream %s: %d rejects looked at, %d stored, %d "
                 "duplicates", settings.stream_name, tally.total, stored,
                 duplicates)
    print_tally(settings.stream_name, tally, dry_run)
    return 0


def _redrive_all(conn, filters: dict, policy: DecodePolicy, dry_run: bool,
                 total: int, tally: Tally) -> None:
    partitions = PartitionCache()
    after, shown_at = 0, time.monotonic()
    while True:
        rows = conn.execute(_PAGE_SQL, {**filters, "after": after,
                                        "rows": PAGE_ROWS,
                                        "bytes": PAGE_BYTES}).fetchall()
        if not rows:
            return
        after = _redrive_page(conn, filters["stream"], rows, policy,
                              dry_run, partitions, tally)
        if time.monotonic() - shown_at >= _PROGRESS_EVERY_S:
            shown_at = time.monotonic()
            print(f"redrive: {tally.total:,} of {total:,} rejects looked at",
                  file=sys.stderr, flush=True)


def _redrive_page(conn, stream: str, rows, policy: DecodePolicy,
                  dry_run: bool, partitions: PartitionCache,
                  tally: Tally) -> int:
    """Decode ``rows`` in order until PAGE_DECODED_CHARS is spent, store
    each shard's part; the id of the last row handled."""
    parts = collections.defaultdict(ShardPart)
    decoded_chars = 0
    for reject_id, shard_id, seq, sub, arrived, raw, reason in rows:
        if decoded_chars >= PAGE_DECODED_CHARS:
            break
        last_id = reject_id
        part = parts[shard_id]
        part.reasons[reject_id] = reason
        raw = bytes(raw)
        if raw.startswith(KPL_MAGIC):
            part.still[Reason.BAD_AGGREGATE.value] += 1
            continue
        meta = RecordMeta(shard_id, seq, sub or 0, arrived)
        item = decode_record(raw, meta, policy)
        if isinstance(item, Reading):
            decoded_chars += len(item.raw_payload)
            part.items.append(Redriven(reject_id, item))
        else:
            part.still[item.reason.value] += 1

    for shard_id, part in sorted(parts.items()):
        if dry_run:
            fates = {item.reject_id: _DRY_RUN_COLUMN for item in part.items}
        else:
            fates = store_redriven(conn, stream, shard_id, part.items,
                                   partitions)
        tally.add(part, fates)
    return last_id


def print_tally(stream: str, tally: Tally, dry_run: bool) -> None:
    if not tally.total:
        print(f"stream {stream}: no rejects to redrive")
        return
    columns = (_DRY_RUN_COLUMN,) if dry_run else RETIRED
    if tally.count(Fate.TAKEN):
        columns += (Fate.TAKEN,)
    rows = []
    for reason in sorted(tally.seen):
        fates = tally.fates[reason]
        counts = [fates[c] for c in columns]
        left = tally.seen[reason] - sum(counts)
        rows.append((reason, f"{tally.seen[reason]:,}",
                     *(f"{n:,}" for n in counts), f"{left:,}"))
    print(f"stream {stream}: redrive of {tally.total:,} reject(s)"
          + (" (dry run)" if dry_run else ""))
    header = ("REASON WAS", "REJECTS",
              *(_HEADINGS.get(c, str(c).upper()) for c in columns),
              "STILL REJECTED")
    for line in table(header, rows, right=frozenset(range(1, len(header)))):
        print("  " + line)
    if tally.still:
        now = ", ".join(f"{reason} {n:,}"
                        for reason, n in sorted(tally.still.items()))
        print(f"Still rejected, by the reason they fail with now: {now}. "
              "Those rows are kept as they were.")
    if dry_run:
        print("Dry run: nothing was stored or deleted.")
