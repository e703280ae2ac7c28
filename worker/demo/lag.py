"""Each shard's lag, measured now at its checkpoint, by the operator status
(``ven-worker status``).

A worker that keeps up commits at nearly zero MillisBehindLatest, so the
lag recorded at commits hides a backlog that the stream holds; measuring at
the checkpoint shows it. One measurement is several Kinesis calls, which
take seconds on a busy emulator, so it runs on its own thread and the
progress line shows the latest result.
"""

import logging
import threading

from worker.ops.status import collect_status

log = logging.getLogger(__name__)

# Between measurements: each costs about ten Kinesis calls, and the sender
# shares the emulator with them.
LIVE_LAG_INTERVAL_S = 3.0


class LiveLag:
    def __init__(self, settings, stop: threading.Event):
        self._settings = settings
        self._stop = stop
        self.latest: dict[str, int | None] = {}
        self._thread = threading.Thread(target=self.measure_routine,
                                        name="demo-live-lag", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def measure_routine(self) -> None:
        while not self._stop.is_set():
            try:
                status = collect_status(self._settings)
            except Exception:  # noqa: BLE001 -- a display aid; try again
                log.warning("measuring the shards' lag failed", exc_info=True)
            else:
                # Only what was measured now; a shard whose probe failed
                # falls back to the lag recorded at its last commit.
                self.latest = {shard.shard_id: shard.live_millis_behind
                               for shard in status.shards
                               if shard.live_millis_behind is not None}
            self._stop.wait(LIVE_LAG_INTERVAL_S)
