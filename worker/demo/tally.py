"""What the simulator has sent: exact counts, kept as records are accepted
(by Kinesis for direct puts, by the broker for MQTT)."""

import threading
from collections import Counter
from dataclasses import dataclass, field

from worker.demo.fleet import DUPLICATE, MALFORMED, READING, Outgoing


@dataclass(frozen=True)
class Sent:
    readings: int = 0
    duplicates: int = 0
    samples: int = 0
    rejected: Counter = field(default_factory=Counter)  # by reason code

    @property
    def malformed(self) -> int:
        return sum(self.rejected.values())

    @property
    def total(self) -> int:
        return self.readings + self.duplicates + self.malformed

    def as_dict(self) -> dict:
        return {"records": self.total, "readings": self.readings,
                "duplicates": self.duplicates, "load_samples": self.samples,
                "rejected": dict(sorted(self.rejected.items()))}


class Tally:
    """Thread-safe counts; the sender adds, the progress display reads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._readings = 0
        self._duplicates = 0
        self._samples = 0
        self._rejected: Counter = Counter()

    def add(self, records: list[Outgoing]) -> None:
        with self._lock:
            for record in records:
                if record.kind == READING:
                    self._readings += 1
                    self._samples += record.samples
                elif record.kind == DUPLICATE:
                    self._duplicates += 1
                elif record.kind == MALFORMED:
                    self._rejected[record.reason] += 1
                else:
                    raise ValueError(f"unknown record kind {record.kind!r}")

    def snapshot(self) -> Sent:
        with self._lock:
            return Sent(self._readings, self._duplicates, self._samples,
                        Counter(self._rejected))
