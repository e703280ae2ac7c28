"""``ven-worker replay``: decode the records kept in ``ingest_rejects`` again,
with this build's decoder and the current settings, and store those that
now decode.

A reject keeps its record byte for byte so that nothing is lost to a
decoder bug or to a limit set too tight (MAX_FUTURE_SKEW_S,
MAX_RECORD_BYTES). Once the bug is fixed or the limit raised, a replay
finishes the job: a reject whose reading is now stored, or was stored
already, leaves the table; one that still fails stays exactly as it was,
with its original reason (a KPL aggregate that could not be split is
never taken apart here). Nothing is stored twice, whether the replay runs
twice, two run at once, or workers store the same reading meanwhile.

Rejects are read in id order, a page at a time, each page in its own
transaction (see ``worker.sink.replay``), so an interrupted replay keeps
what it finished and the next one picks up the rest.
"""

import collections
import logging
import sys
import time
from dataclasses import dataclass, field

from worker.db.connect import connect
from worker.errors import ConfigError
from worker.kinesis.kpl import MAGIC as KPL_MAGIC
from worker.ops.leases_view import check_tables
from worker.ops.render import table
from worker.records import RecordMeta, decode_record
from worker.records.model import Reading, Reason
from worker.records.policy import DecodePolicy
from worker.sink.load import PartitionsMissing
from worker.sink.partitions import PartitionCache
from worker.sink.replay import Fate, Replayed, store_replayed

log = logging.getLogger(__name__)

# Rejects per transaction. A reject holds at most MAX_RECORD_BYTES (1 MiB by
# default), so a page stays within a few hundred MB even at that worst case.
PAGE_SIZE = 200

_PROGRESS_EVERY_S = 5.0

_PAGE_SQL = """
SELECT id, shard_id, sequence_number, sub_sequence_number, arrived_at,
       raw_data, reason_code
FROM ingest_rejects
WHERE stream_name = %(stream)s AND id > %(after)s
  AND (%(reasons)s::text[] IS NULL OR reason_code = ANY(%(reasons)s))
  AND (%(shard)s::text IS NULL OR shard_id = %(shard)s)
ORDER BY id
LIMIT %(limit)s
"""

_COUNT_SQL = """
SELECT count(*) FROM ingest_rejects
WHERE stream_name = %(stream)s
  AND (%(reasons)s::text[] IS NULL OR reason_code = ANY(%(reasons)s))
  AND (%(shard)s::text IS NULL OR shard_id = %(shard)s)
"""

# What a reject that leaves the table became: the summary's columns.
_FATES = (Fate.STORED, Fate.DUPLICATE)
_HEADINGS = {Fate.DUPLICATE: "DUPLICATES"}


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


def check_reasons(reasons: list[str] | None) -> list[str] | None:
    """The reason codes asked for, or ConfigError naming the known ones."""
    if not reasons:
        return None
    known = {reason.value for reason in Reason}
    unknown = [r for r in reasons if r not in known]
    if unknown:
        raise ConfigError(
            f"replay: unknown reason code {', '.join(unknown)} (known: "
            f"{', '.join(sorted(known))})")
    return sorted(set(reasons))


def replay(settings, reasons: list[str] | None = None,
           shard: str | None = None, dry_run: bool = False) -> int:
    """Replay the stream's rejects (those with ``reasons`` and on ``shard``
    when given); prints what became of them. ``dry_run`` only decodes."""
    filters = {"stream": settings.stream_name,
               "reasons": check_reasons(reasons), "shard": shard}
    policy = DecodePolicy(max_record_bytes=settings.max_record_bytes,
                          max_future_skew_s=settings.max_future_skew_s)
    # Autocommit, so each page's ``transaction()`` is a real transaction
    # and not a savepoint of one that lasts the whole replay.
    with connect(settings.database_url, settings.pg_schema,
                 autocommit=True) as conn:
        check_tables(conn, settings.database_url, settings.pg_schema)
        total = conn.execute(_COUNT_SQL, filters).fetchone()[0]
        tally = _replay_all(conn, filters, policy, dry_run, total)
    if not dry_run:
        stored, duplicates = map(tally.count, _FATES)
        log.info("replay of stream %s: %d rejects looked at, %d stored, %d "
                 "duplicates, %d still rejected", settings.stream_name,
                 tally.total, stored, duplicates,
                 tally.total - stored - duplicates)
    print_tally(settings.stream_name, tally, dry_run)
    return 0


def _replay_all(conn, filters: dict, policy: DecodePolicy, dry_run: bool,
                total: int) -> Tally:
    tally = Tally()
    partitions = PartitionCache()
    after, shown_at = 0, time.monotonic()
    while True:
        rows = conn.execute(
            _PAGE_SQL, {**filters, "after": after, "limit": PAGE_SIZE}
        ).fetchall()
        if not rows:
            return tally
        after = rows[-1][0]
        _replay_page(conn, filters["stream"], rows, policy, dry_run,
                     partitions, tally)
        if time.monotonic() - shown_at >= _PROGRESS_EVERY_S:
            shown_at = time.monotonic()
            print(f"replay: {tally.total:,} of {total:,} rejects looked at",
                  file=sys.stderr, flush=True)


def _replay_page(conn, stream: str, rows, policy: DecodePolicy,
                 dry_run: bool, partitions: PartitionCache,
                 tally: Tally) -> None:
    reason_was, decoded = {}, []
    for reject_id, shard_id, seq, sub, arrived, raw, reason in rows:
        reason_was[reject_id] = reason
        tally.seen[reason] += 1
        raw = bytes(raw)
        if raw.startswith(KPL_MAGIC):
            # A KPL aggregate kept whole because it could not be split: it
            # holds many records, not one reading, so it is left as it is.
            tally.still[Reason.BAD_AGGREGATE.value] += 1
            continue
        meta = RecordMeta(shard_id, seq, sub or 0, arrived)
        item = decode_record(raw, meta, policy)
        if isinstance(item, Reading):
            decoded.append(Replayed(reject_id, shard_id, item))
        else:
            tally.still[item.reason.value] += 1

    if dry_run:
        for item in decoded:
            tally.fates[reason_was[item.reject_id]]["decodes now"] += 1
        return
    fates = _store(conn, stream, decoded, partitions)
    for item in decoded:
        fate = fates[item.reject_id]
        tally.fates[reason_was[item.reject_id]][fate] += 1
        if fate is Fate.REFUSED:
            tally.still[Reason.DATABASE_REFUSED.value] += 1


def _store(conn, stream: str, decoded: list[Replayed],
           partitions: PartitionCache) -> dict[int, Fate]:
    try:
        return store_replayed(conn, stream, decoded, partitions)
    except PartitionsMissing as exc:
        # Retention dropped a day between our check and the load: make it
        # again and try the page once more.
        partitions.forget(exc.days)
        return store_replayed(conn, stream, decoded, partitions)


def print_tally(stream: str, tally: Tally, dry_run: bool) -> None:
    if not tally.total:
        print(f"stream {stream}: no rejects to replay")
        return
    columns = ("decodes now",) if dry_run else tuple(f.value for f in _FATES)
    rows = []
    for reason in sorted(tally.seen):
        fates = tally.fates[reason]
        counts = [fates[c] for c in columns]  # Fate values are str
        rows.append((reason, f"{tally.seen[reason]:,}",
                     *(f"{n:,}" for n in counts),
                     f"{tally.seen[reason] - sum(counts):,}"))
    verb = "would replay" if dry_run else "replayed"
    print(f"stream {stream}: {verb} {tally.total:,} reject(s)")
    header = ("REASON WAS", "REJECTS",
              *(_HEADINGS.get(c, c.upper()) for c in columns),
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
