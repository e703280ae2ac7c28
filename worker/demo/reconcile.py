"""The reconciliation: what the fleet sent against what the tables hold.

It balances when every record sent is accounted for once: stored as a
reading, counted as a duplicate, or rejected with the reason expected for
it. The tables are read directly (rows in ``ven_telemetry``,
``ven_load_samples`` and ``ingest_rejects``), and the lease table's running
counts must agree with them.
"""

from collections import Counter
from dataclasses import dataclass, field

import psycopg

from worker.demo.tally import Sent


@dataclass(frozen=True)
class Stored:
    readings: int  # rows in ven_telemetry
    samples: int  # rows in ven_load_samples
    rejected: Counter  # ingest_rejects rows by reason code
    # The lease table's running counts, moved with each batch's rows.
    counted_stored: int
    counted_duplicates: int
    counted_rejected: int


def read_stored(conn: psycopg.Connection, stream: str) -> Stored:
    readings = conn.execute("SELECT count(*) FROM ven_telemetry").fetchone()
    samples = conn.execute("SELECT count(*) FROM ven_load_samples").fetchone()
    rejected = Counter(dict(conn.execute(
        "SELECT reason_code, count(*) FROM ingest_rejects "
        "WHERE stream_name = %s GROUP BY reason_code", (stream,))))
    counts = conn.execute(
        "SELECT coalesce(sum(records_stored), 0), "
        "coalesce(sum(duplicates_dropped), 0), "
        "coalesce(sum(records_rejected), 0) "
        "FROM shard_leases WHERE stream_name = %s", (stream,)).fetchone()
    return Stored(readings[0], samples[0], rejected, *map(int, counts))


@dataclass
class Reconciliation:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return not self.problems

    def check(self, label: str, expected: int, actual: int,
              what: str) -> None:
        ok = expected == actual
        mark = "ok" if ok else f"MISMATCH ({actual - expected:+,})"
        self.lines.append(f"  {label:<28} {expected:>10,} {actual:>10,}  "
                          f"{mark}")
        if not ok:
            self.problems.append(f"{what}: expected {expected:,}, found "
                                 f"{actual:,}")


def reconcile(sent: Sent, stored: Stored) -> Reconciliation:
    result = Reconciliation()
    result.lines.append(f"  {'':<28} {'sent':>10} {'in tables':>10}")
    result.check("readings (ven_telemetry)", sent.readings, stored.readings,
                 "readings stored")
    result.check("load samples", sent.samples, stored.samples,
                 "load samples stored")
    result.check("duplicates (dropped)", sent.duplicates,
                 stored.counted_duplicates, "duplicates counted")
    rejected_total = sum(stored.rejected.values())
    result.check("rejected (ingest_rejects)", sent.malformed, rejected_total,
                 "records rejected")
    for reason in sorted(set(sent.rejected) | set(stored.rejected)):
        result.check(f"  {reason}", sent.rejected[reason],
                     stored.rejected[reason], f"rejects with reason {reason}")

    # The lease table's ledger must tell the same story as the rows.
    ledger = (stored.counted_stored + stored.counted_duplicates
              + stored.counted_rejected)
    if stored.counted_stored != stored.readings:
        result.problems.append(
            f"the lease table counts {stored.counted_stored:,} readings "
            f"stored, ven_telemetry holds {stored.readings:,}")
    if stored.counted_rejected != rejected_total:
        result.problems.append(
            f"the lease table counts {stored.counted_rejected:,} rejects, "
            f"ingest_rejects holds {rejected_total:,}")
    sign, mark = ("=", "ok") if ledger == sent.total else ("!=", "MISMATCH")
    result.lines.append(
        f"  records sent {sent.total:,} {sign} stored "
        f"{stored.counted_stored:,} + duplicates "
        f"{stored.counted_duplicates:,} + rejected "
        f"{stored.counted_rejected:,}  {mark}")
    if ledger != sent.total:
        result.problems.append(
            f"{sent.total:,} records sent but {ledger:,} accounted for "
            f"(stored + duplicates + rejected)")
    return result
