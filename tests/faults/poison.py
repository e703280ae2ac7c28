"""Malformed records for the poison storm, each with the fate it must have.

``poison_cases.jsonl`` holds one kind a line, copied from the shared cases
file so the suite does not depend on a folder beside the clone:

- ``outcome`` is ``rejected`` (with the project's ``reason`` code) or
  ``stored`` (at ``stored_at``, with ``samples`` load samples);
- the bytes are ``text`` (UTF-8) or ``base64``; the two very long cases are
  written compactly: ``@NEST@`` stands for ``nest`` brackets deep, and
  ``@CIRCUITS@`` for ``circuits`` circuit objects;
- ``unique_ven``: the record is sent under a fresh venId each time, so that
  repeats of a stored kind do not collide on the reading's key;
- ``copies``: the record is put that many times in a row (the duplicate
  case: one stored, the others counted as duplicates).

Two kinds are built here rather than read: a KPL aggregate of two good
readings, and one whose checksum is broken.
"""

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import aws_kinesis_agg
import orjson
from aws_kinesis_agg.aggregator import RecordAggregator

from tests.e2e.worker_harness import reading
from tests.faults.ledger import Expect, Outgoing

CASES_FILE = Path(__file__).with_name("poison_cases.jsonl")

# The value the storm's CHECK constraint refuses (see REFUSE_CHECK_SQL): the
# db-refused case carries it, no other record does.
REFUSED_POWER_KW = -999.25
REFUSE_CHECK_SQL = (
    "ALTER TABLE ven_telemetry ADD CONSTRAINT faults_refuse_marker "
    f"CHECK (used_power_kw IS DISTINCT FROM {REFUSED_POWER_KW})"
)

_TEMPLATE_VEN = b'"venId":"ven-001"'

# A VEN block and steps of its own, apart from ReadingSource's ven-00NN.
AGGREGATE_VEN_BASE = 9000


@dataclass(frozen=True)
class PoisonKind:
    id: str
    data: bytes
    outcome: str  # "stored" or "rejected"
    reason: str | None = None
    stored_at: datetime | None = None
    samples: int = 0
    unique_ven: bool = False
    copies: int = 1


def _case_bytes(case: dict) -> bytes:
    if "base64" in case:
        return base64.b64decode(case["base64"])
    text = case["text"]
    if "nest" in case:
        text = text.replace("@NEST@", "[" * case["nest"] + "]" * case["nest"])
    if "circuits" in case:
        circuits = ",".join('{"id":"c%04d","power":1234.5}' % i
                            for i in range(case["circuits"]))
        text = text.replace("@CIRCUITS@", circuits)
    return text.encode("utf-8")


def load_kinds() -> list[PoisonKind]:
    kinds = []
    for line in CASES_FILE.read_text().splitlines():
        case = json.loads(line)
        stored_at = case.get("stored_at")
        kinds.append(PoisonKind(
            id=case["id"], data=_case_bytes(case), outcome=case["outcome"],
            reason=case.get("reason"),
            stored_at=datetime.fromisoformat(stored_at) if stored_at else None,
            samples=case.get("samples", 0),
            unique_ven=case.get("unique_ven", False),
            copies=case.get("copies", 1)))
    return kinds


class PoisonMix:
    """Every ``every``-th record is the next poison kind in turn (also the
    aggregates); the rest come from ``source``."""

    def __init__(self, source, kinds: list[PoisonKind], every: int = 10):
        self._source = source
        self._kinds = kinds
        self._every = every
        self._count = 0
        self._turn = 0
        self.sent_kinds: dict[str, int] = {}

    def next(self) -> list[Outgoing]:
        self._count += 1
        if self._count % self._every:
            return self._source.next()
        slot = self._turn % (len(self._kinds) + 2)
        self._turn += 1
        if slot == len(self._kinds):
            kind_id, out = "kpl-aggregate", [self._aggregate(broken=False)]
        elif slot == len(self._kinds) + 1:
            kind_id, out = "bad-aggregate", [self._aggregate(broken=True)]
        else:
            kind = self._kinds[slot]
            kind_id, out = kind.id, self._case(kind)
        self.sent_kinds[kind_id] = self.sent_kinds.get(kind_id, 0) + 1
        return out

    def _case(self, kind: PoisonKind) -> list[Outgoing]:
        data, ven = kind.data, "ven-001"
        if kind.unique_ven:
            ven = f"case-{self._turn:05d}"
            data = data.replace(_TEMPLATE_VEN, f'"venId":"{ven}"'.encode(), 1)
        if kind.outcome == "stored":
            expect = Expect.stored(kind.id, ven, kind.stored_at, kind.samples)
        else:
            expect = Expect.rejected(kind.id, kind.reason)
        one = Outgoing(data, f"poison-{self._turn}", (expect,))
        return [one] * kind.copies

    def _aggregate(self, broken: bool) -> Outgoing:
        payloads = [reading(AGGREGATE_VEN_BASE + self._turn, n)
                    for n in range(2)]
        aggregator = RecordAggregator()
        for payload in payloads:
            aggregator.add_user_record(payload["venId"], orjson.dumps(payload))
        key, _, data = aggregator.clear_and_get().get_contents()
        if broken:
            data = _break_checksum(data)
            expect = Expect.rejected("bad-aggregate", "bad_aggregate")
            return Outgoing(data, key, (expect,))
        expects = tuple(
            Expect.stored("kpl-aggregate", p["venId"],
                          datetime.fromtimestamp(p["timestamp"], timezone.utc),
                          len(p["loads"]))
            for p in payloads)
        raws = tuple(orjson.dumps(p) for p in payloads)
        return Outgoing(data, key, expects, raws)


def _break_checksum(data: bytes) -> bytes:
    """The aggregate with a digest that does not match its protobuf."""
    body = data[len(aws_kinesis_agg.MAGIC):-aws_kinesis_agg.DIGEST_SIZE]
    wrong = hashlib.md5(body + b"x").digest()
    return aws_kinesis_agg.MAGIC + body + wrong
