"""The sending loop: one round of the fleet every round interval, on its own
thread so the progress display never waits on a put."""

import logging
import threading
import time

from worker.demo.fleet import Fleet

log = logging.getLogger(__name__)

# A late sender joins due rounds into one publish until it holds this many
# records: one full PutRecords call.
CATCH_UP_RECORDS = 500


class Sender(threading.Thread):
    """Sends ``rounds`` rounds of ``fleet`` through ``publisher``, paced by
    the real clock. A round that comes due while the last one is still
    being put goes out at once: the run falls behind its schedule rather
    than dropping anything."""

    def __init__(self, fleet: Fleet, rounds: int, interval_s: float,
                 publisher, stop: threading.Event,
                 batch_records: int = CATCH_UP_RECORDS):
        super().__init__(name="demo-sender", daemon=True)
        self._fleet = fleet
        self._rounds = rounds
        self._interval_s = interval_s
        self._publisher = publisher
        self._batch_records = batch_records
        self._halt = stop
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.behind_s = 0.0  # how late the latest round went out
        self.rounds_sent = 0

    def run(self) -> None:
        try:
            self.send_routine()
        except BaseException as exc:  # handed to the main thread
            log.debug("sender failed", exc_info=True)
            self.error = exc
        finally:
            self.done.set()

    def send_routine(self) -> None:
        began = time.monotonic()
        step = 0
        while step < self._rounds:
            due = began + step * self._interval_s
            if self._halt.wait(max(0.0, due - time.monotonic())):
                return
            self.behind_s = max(0.0, time.monotonic() - due)
            # Rounds that came due while the last put ran go out together:
            # fewer, fuller calls help most when the stream is slow.
            records = self._fleet.round(step)
            step += 1
            while (step < self._rounds
                   and began + step * self._interval_s <= time.monotonic()
                   and len(records) < self._batch_records):
                records += self._fleet.round(step)
                step += 1
            self._publisher.publish(records)
            self.rounds_sent = step
        if not self._halt.is_set():
            self._publisher.publish(self._fleet.finish())
