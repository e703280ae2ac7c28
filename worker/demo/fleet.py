"""The simulated VEN fleet: what it sends, round by round. No I/O.

Every round each VEN reports one reading. Duplicates (a payload sent again
as a new record, as a VEN retrying after a lost acknowledgement does) and
malformed records are mixed in at the configured shares, and each record
says what it is, so the sender can count exactly what the worker must
store, count as a duplicate, or reject with which reason.
"""

import json
import random
from dataclasses import dataclass

import orjson

from worker.demo.malformed import KINDS
from worker.demo.options import READING_INTERVAL_S
from worker.demo.shapes import Ven, make_ven, payload

READING = "reading"
DUPLICATE = "duplicate"
MALFORMED = "malformed"

# The production rule's constant partition key, and the key a ``${venId}``
# rule falls back to when a message has no usable venId.
PRODUCTION_KEY = "iot"

# Kinesis partition keys are 1 to 256 characters.
MAX_KEY_CHARS = 256


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record for the stream, and what the worker must make of it."""

    data: bytes
    key: str  # partition key, as a ``${venId}`` rule renders it
    kind: str  # READING, DUPLICATE or MALFORMED
    reason: str | None = None  # expected reject reason code (MALFORMED)
    samples: int = 0  # load samples the worker must store (READING)


class Fleet:
    """``vens`` simulated VENs whose first round is at ``start_ts`` (epoch
    seconds). The same seed gives the same records."""

    def __init__(self, vens: int, start_ts: int, seed: int,
                 duplicate_share: float, malformed_share: float):
        self._rng = random.Random(seed)
        self.vens = [make_ven(i, self._rng) for i in range(vens)]
        self.start_ts = start_ts
        self._duplicate_share = duplicate_share
        self._malformed_share = malformed_share
        # Fractional records owed; a whole one is sent as soon as it is due,
        # so the counts track the shares exactly, not just on average.
        self._duplicates_owed = 0.0
        self._malformed_owed = 0.0
        self._next_kind = self._rng.randrange(len(KINDS))
        # Duplicates go out one round after their original.
        self._held: list[Outgoing] = []

    def round(self, step: int) -> list[Outgoing]:
        """The records of round ``step`` (0-based), in sending order."""
        records = self._held
        readings = [self._reading(ven, step) for ven in self.vens]
        records = records + readings

        self._duplicates_owed += len(readings) * self._duplicate_share
        self._held = []
        while self._duplicates_owed >= 1:
            self._duplicates_owed -= 1
            original = self._rng.choice(readings)
            self._held.append(Outgoing(original.data, original.key, DUPLICATE))

        self._malformed_owed += len(readings) * self._malformed_share
        while self._malformed_owed >= 1:
            self._malformed_owed -= 1
            records.insert(self._rng.randrange(len(records) + 1),
                           self._malformed(step))
        return records

    def finish(self) -> list[Outgoing]:
        """Duplicates still held after the last round."""
        held, self._held = self._held, []
        return held

    def round_ts(self, step: int) -> int:
        return self.start_ts + step * READING_INTERVAL_S

    def _reading(self, ven: Ven, step: int) -> Outgoing:
        ts = self.round_ts(step) + ven.offset_s
        body, samples = payload(ven, step, ts, self._rng)
        return Outgoing(orjson.dumps(body), ven.ven_id, READING,
                        samples=samples)

    def _malformed(self, step: int) -> Outgoing:
        # Kinds in turn, so a short run still shows every one of them.
        kind = KINDS[self._next_kind]
        self._next_kind = (self._next_kind + 1) % len(KINDS)
        ven = self._rng.choice(self.vens)
        data = kind.make(ven, self.round_ts(step) + ven.offset_s)
        return Outgoing(data, rule_key(data), MALFORMED,
                        reason=kind.reason.value)


def rule_key(data: bytes) -> str:
    """The partition key a ``${venId}`` rule gives these bytes: the venId
    when the payload is a JSON object with a usable one, else the
    fallback. The standard library's parser, like the rule's, takes NaN."""
    try:
        document = json.loads(data)
    except ValueError:  # also UnicodeDecodeError
        return PRODUCTION_KEY
    ven_id = document.get("venId") if isinstance(document, dict) else None
    if isinstance(ven_id, str) and 0 < len(ven_id) <= MAX_KEY_CHARS:
        return ven_id
    return PRODUCTION_KEY
