"""What a scenario put into the stream, record by record, and what must
become of each: stored under a key, or rejected with a reason code.

The producer fills the ledger from PutRecords answers, so every entry has
the shard and sequence number the worker will see. A KPL aggregate adds one
entry per user record inside it, numbered by sub-sequence.
"""

import collections
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_us(moment: datetime) -> int:
    """Exact microseconds since the epoch (no float rounding)."""
    return (moment - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Expect:
    """The outcome one user record must have."""

    kind: str  # "reading", or the poison case it stands for
    key: tuple[str, int] | None = None  # (ven_id, epoch µs) if stored
    reason: str | None = None  # reason code if rejected
    samples: int = 0  # load samples its reading carries

    @classmethod
    def stored(cls, kind: str, ven_id: str, at: datetime,
               samples: int) -> "Expect":
        return cls(kind, key=(ven_id, epoch_us(at)), samples=samples)

    @classmethod
    def rejected(cls, kind: str, reason: str) -> "Expect":
        return cls(kind, reason=reason)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One stream record to put, with the outcome of each user record in
    it (one for a plain record, several for a KPL aggregate)."""

    data: bytes
    partition_key: str
    expects: tuple[Expect, ...]
    # The bytes a reject row must keep, per user record (the record's own
    # data unless it is an aggregate).
    raws: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class SentRecord:
    shard_id: str
    sequence_number: str
    sub_sequence_number: int
    raw: bytes
    expect: Expect

    @property
    def position(self) -> tuple[str, str, int]:
        return (self.shard_id, self.sequence_number, self.sub_sequence_number)


class Ledger:
    """Thread-safe list of SentRecords (the producer appends while the
    progress sampler counts)."""

    def __init__(self):
        self._records: list[SentRecord] = []
        self._per_shard: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def add(self, shard_id: str, sequence_number: str,
            outgoing: Outgoing) -> None:
        raws = outgoing.raws or (outgoing.data,) * len(outgoing.expects)
        entries = [SentRecord(shard_id, sequence_number, sub, raw, expect)
                   for sub, (raw, expect)
                   in enumerate(zip(raws, outgoing.expects))]
        with self._lock:
            self._records.extend(entries)
            self._per_shard[shard_id] += len(entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def per_shard(self) -> dict[str, int]:
        """User records put so far, by shard."""
        with self._lock:
            return dict(self._per_shard)

    def records(self) -> list[SentRecord]:
        with self._lock:
            return list(self._records)
