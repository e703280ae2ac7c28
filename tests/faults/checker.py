"""The one loss/duplicate checker every scenario ends with.

Given the ledger (every user record put, with the fate it must have), it
reads the tables and works out:

- stored: ledger keys found in ``ven_telemetry``;
- duplicates dropped: the lease rows' running total, and how many of those
  the ledger explains (the same key put more than once on purpose);
- rejected: ``ingest_rejects`` rows, by reason code;
- lost: a key never stored, or a record due a reject row without one;
- doubled: a record processed twice, i.e. duplicates counted beyond the
  ledger's own repeats, or two reject rows for one stream position;
- unexpected: anything else (rows nobody sent, a wrong reason, raw bytes
  not kept byte for byte, orphan or missing load samples, lease-row totals
  that disagree with the rows).

NOTE: the duplicate total lives on lease rows. A row pruned because its
ended shard left the stream would take its count with it; LocalStack keeps
ended shards for the whole test, so that does not happen here.
"""

import collections
from dataclasses import asdict, dataclass, field

import psycopg

from tests.faults.ledger import SentRecord

# Shown per problem kind in the report; the counts say how many there are.
EXAMPLES_SHOWN = 3


@dataclass
class Report:
    scenario: str
    sent: int  # user records put
    poison: int  # of which not plain well-formed readings
    stored: int
    duplicates_dropped: int
    duplicates_sent: int  # repeats the ledger put on purpose
    rejected: dict[str, int]
    lost: int
    doubled: int
    unexpected: list[str] = field(default_factory=list)
    longest_pause_s: float = 0.0
    notes: dict = field(default_factory=dict)
    lost_examples: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and not self.unexpected

    def line(self) -> str:
        rejected = str(sum(self.rejected.values()))
        if self.rejected:
            rejected += " (" + ", ".join(
                f"{k} {v}" for k, v in sorted(self.rejected.items())) + ")"
        notes = "".join(f"; {k} {v}" for k, v in self.notes.items())
        return (f"{self.scenario}: sent {self.sent} ({self.poison} poison), "
                f"stored {self.stored}, duplicates dropped "
                f"{self.duplicates_dropped} ({self.duplicates_sent} sent on "
                f"purpose), rejected {rejected}, lost {self.lost}, doubled "
                f"{self.doubled}, unexpected {len(self.unexpected)}, longest "
                f"pause {self.longest_pause_s:.1f} s{notes}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Tables:
    rows: list  # (ven_id, epoch µs, shard_id, sequence_number, sub)
    rejects: list  # (shard_id, sequence_number, sub, reason, raw)
    samples: int
    orphan_samples: int
    totals: tuple  # (stored, duplicates, rejected) over lease rows


def _read_tables(pg_url: str, schema: str, stream: str) -> _Tables:
    with psycopg.connect(pg_url) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        rows = conn.execute(
            "SELECT ven_id, (extract(epoch FROM \"timestamp\") * 1000000)"
            "::bigint, shard_id, sequence_number, sub_sequence_number "
            "FROM ven_telemetry").fetchall()
        rejects = conn.execute(
            "SELECT shard_id, sequence_number, sub_sequence_number, "
            "reason_code, raw_data FROM ingest_rejects WHERE stream_name = %s",
            (stream,)).fetchall()
        samples, orphans = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS ("
            "SELECT 1 FROM ven_telemetry t WHERE t.id = s.telemetry_id)) "
            "FROM ven_load_samples s").fetchone()
        totals = conn.execute(
            "SELECT coalesce(sum(records_stored), 0), "
            "coalesce(sum(duplicates_dropped), 0), "
            "coalesce(sum(records_rejected), 0) "
            "FROM shard_leases WHERE stream_name = %s", (stream,)).fetchone()
    return _Tables(rows, rejects, samples, orphans, tuple(map(int, totals)))


def _problem(problems: list, what: str, items) -> None:
    items = list(items)
    if items:
        problems.append(f"{len(items)} {what}, e.g. {items[:EXAMPLES_SHOWN]}")


def check(scenario: str, pg_url: str, schema: str, stream: str,
          sent: list[SentRecord], longest_pause_s: float = 0.0,
          notes: dict | None = None) -> Report:
    """Compare the tables with ``sent``; never raises for a mismatch (the
    report says what is wrong)."""
    tables = _read_tables(pg_url, schema, stream)
    problems: list[str] = []

    # -- readings: stored once each, nothing else stored -------------------
    due = [r for r in sent if r.expect.key is not None]
    key_counts = collections.Counter(r.expect.key for r in due)
    samples_due = {r.expect.key: r.expect.samples for r in due}
    stored_keys = {(ven, us) for ven, us, *_ in tables.rows}
    lost_keys = set(key_counts) - stored_keys
    _problem(problems, "rows nobody sent",
             sorted(stored_keys - set(key_counts)))
    repeats_sent = sum(n - 1 for n in key_counts.values())

    # -- rejects: one row per rejected record, right reason, same bytes ----
    reject_rows = collections.defaultdict(list)
    for shard, seq, sub, reason, raw in tables.rejects:
        reject_rows[(shard, seq, sub or 0)].append((reason, bytes(raw)))
    due_rejects = {r.position: r for r in sent if r.expect.reason}
    lost_rejects = [pos for pos in due_rejects if pos not in reject_rows]
    doubled_rejects = sum(len(v) - 1 for v in reject_rows.values())
    _problem(problems, "reject rows for records due to be stored or never "
             "sent", sorted(set(reject_rows) - set(due_rejects)))
    wrong_reason, wrong_bytes = [], []
    for pos, record in due_rejects.items():
        for reason, raw in reject_rows.get(pos, ()):
            if reason != record.expect.reason:
                wrong_reason.append((record.expect.kind, reason))
            if raw != record.raw:
                wrong_bytes.append(record.expect.kind)
    _problem(problems, "rejects with the wrong reason", wrong_reason)
    _problem(problems, "rejects whose raw bytes differ", wrong_bytes)

    # -- the ledger on the lease rows agrees with the rows ----------------
    stored_total, duplicates, rejected_total = tables.totals
    if stored_total != len(tables.rows):
        problems.append(f"lease rows count {stored_total} stored, the table "
                        f"holds {len(tables.rows)}")
    if rejected_total != len(tables.rejects):
        problems.append(f"lease rows count {rejected_total} rejected, the "
                        f"table holds {len(tables.rejects)}")
    if duplicates < repeats_sent:
        problems.append(f"{repeats_sent} repeats sent but only {duplicates} "
                        "counted as duplicates")

    # -- load samples: all there, none left behind -------------------------
    samples_expected = sum(samples_due[k] for k in stored_keys
                           if k in samples_due)
    if tables.samples != samples_expected:
        problems.append(f"{tables.samples} load samples, expected "
                        f"{samples_expected}")
    if tables.orphan_samples:
        problems.append(f"{tables.orphan_samples} load samples without "
                        "their reading")

    return Report(
        scenario=scenario,
        sent=len(sent),
        poison=sum(1 for r in sent if r.expect.kind != "reading"),
        stored=len(stored_keys & set(key_counts)),
        duplicates_dropped=duplicates,
        duplicates_sent=repeats_sent,
        rejected=dict(collections.Counter(r[3] for r in tables.rejects)),
        lost=len(lost_keys) + len(lost_rejects),
        doubled=max(0, duplicates - repeats_sent) + doubled_rejects,
        unexpected=problems,
        longest_pause_s=longest_pause_s,
        notes=dict(notes or {}),
        lost_examples=(sorted(lost_keys) + sorted(lost_rejects))[
            :EXAMPLES_SHOWN],
    )
