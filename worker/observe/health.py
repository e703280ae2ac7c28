"""Is the worker alive? The runtime reports each loop's progress here; the
health endpoint asks.

A worker is healthy while its lease loop ticks and every shard reader makes
progress (any GetRecords answer, even an empty one, counts). A loop that has
not reported within its bound is stalled, and the orchestrator should replace
the process.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# The lease loop renews three times per lease duration; silent for three
# whole durations, it has lost every lease it held and will not get them back.
LEASE_LOOP_STALL_FACTOR = 3.0

# A reader waits at most the idle interval between calls, and a batch commit
# with database retries can take a minute. Two minutes without any answer is
# a hang, still short of the five minutes after which its iterator expires.
READER_STALL_S = 120.0


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"status": "ok" if self.ok else "unhealthy",
                "problems": list(self.problems)}


class HealthState:
    """Last-progress times of the lease loop and of each shard reader.

    Thread-safe: the loops report from their own threads while the HTTP
    server's threads check.
    """

    def __init__(self, lease_stall_s: float,
                 reader_stall_s: float = READER_STALL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.lease_stall_s = lease_stall_s
        self.reader_stall_s = reader_stall_s
        self._clock = clock
        self._lock = threading.Lock()
        # Counting from creation gives start-up one stall bound of grace
        # before the first lease loop tick.
        self._lease_tick = clock()
        self._readers: dict[str, float] = {}
        self._stopping = False

    @classmethod
    def for_lease_duration(cls, lease_duration_s: float, **kwargs):
        return cls(lease_duration_s * LEASE_LOOP_STALL_FACTOR, **kwargs)

    def lease_loop_ticked(self) -> None:
        with self._lock:
            self._lease_tick = self._clock()

    def reader_progressed(self, shard_id: str) -> None:
        with self._lock:
            self._readers[shard_id] = self._clock()

    # A reader is watched from its start, so one stuck before its first
    # answer is caught too.
    reader_started = reader_progressed

    def reader_stopped(self, shard_id: str) -> None:
        """The reader ended on purpose (shard end, lease moved): stop
        watching it."""
        with self._lock:
            self._readers.pop(shard_id, None)

    def stopping(self) -> None:
        """Shutdown has begun: report unhealthy so nothing waits on us."""
        with self._lock:
            self._stopping = True

    def check(self) -> HealthReport:
        with self._lock:
            now = self._clock()
            problems = []
            if self._stopping:
                problems.append("shutting down")
            silent = now - self._lease_tick
            if silent > self.lease_stall_s:
                problems.append(f"lease loop silent for {silent:.1f}s "
                                f"(bound {self.lease_stall_s:g}s)")
            for shard_id, last in sorted(self._readers.items()):
                silent = now - last
                if silent > self.reader_stall_s:
                    problems.append(f"reader of {shard_id} silent for "
                                    f"{silent:.1f}s (bound "
                                    f"{self.reader_stall_s:g}s)")
        return HealthReport(not problems, tuple(problems))
