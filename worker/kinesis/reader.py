"""Reading one shard: where to start, the iterator, polling pace, and expiry.

``ShardReader.fetch_next()`` returns one page per call. It knows nothing of
the sink: the caller decides when a page is stored, and the reader only has to
remember the last record it handed out, so that an expired iterator resumes
right after it (every handed-out record is stored or the shard is dropped, so
that record is the last committed one once the in-flight batch commits).
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from worker.kinesis.client import IteratorExpired, KinesisClient, Page

log = logging.getLogger(__name__)

TRIM_HORIZON = "TRIM_HORIZON"
LATEST = "LATEST"
AT_TIMESTAMP = "AT_TIMESTAMP"

# Kinesis allows 5 GetRecords calls per second per shard, shared by every
# consumer of the shard; 0.2 s between calls keeps this worker within it even
# while it drains a backlog as fast as it can.
MIN_CALL_INTERVAL_S = 0.2


@dataclass(frozen=True, slots=True)
class StartPosition:
    """Where a shard's reading starts."""

    checkpoint_sequence: str | None = None
    reset_to_timestamp: datetime | None = None
    initial: str = TRIM_HORIZON
    initial_timestamp: datetime | None = None
    # Children of a resharded shard always start at their beginning, or the
    # records written between the split and the first read would be lost.
    is_child: bool = False


class ShardReader:
    def __init__(self, client: KinesisClient, stream: str, shard_id: str,
                 start: StartPosition, max_records: int,
                 idle_interval_s: float, stop: threading.Event):
        self._client = client
        self._stream = stream
        self.shard_id = shard_id
        self._start = start
        self._max_records = max_records
        self._idle_interval_s = idle_interval_s
        self._stop = stop
        self._iterator: str | None = None
        self._after: str | None = start.checkpoint_sequence
        self._last_call = 0.0
        self._caught_up = False
        self.iterator_renewals = 0

    def _new_iterator(self) -> str:
        if self._after is not None:
            return self._client.get_shard_iterator(
                self._stream, self.shard_id, "AFTER_SEQUENCE_NUMBER",
                sequence_number=self._after)
        start = self._start
        if start.reset_to_timestamp is not None:
            return self._client.get_shard_iterator(
                self._stream, self.shard_id, AT_TIMESTAMP,
                timestamp=start.reset_to_timestamp)
        if start.is_child or start.initial == TRIM_HORIZON:
            return self._client.get_shard_iterator(
                self._stream, self.shard_id, TRIM_HORIZON)
        if start.initial == AT_TIMESTAMP:
            return self._client.get_shard_iterator(
                self._stream, self.shard_id, AT_TIMESTAMP,
                timestamp=start.initial_timestamp)
        return self._client.get_shard_iterator(
            self._stream, self.shard_id, LATEST)

    @property
    def max_records(self) -> int:
        """The most records one GetRecords call asks for (MAX_RECORDS)."""
        return self._max_records

    def wait_turn(self) -> None:
        """Wait out the idle interval when caught up, and the per-shard call
        limit always. Returns early when stopping.

        ``fetch_next`` waits here too; a caller that reserves memory for the
        page calls this first, so an idle shard does not hold a reservation
        through its idle interval while a busy shard waits for it."""
        delay = MIN_CALL_INTERVAL_S
        if self._caught_up:
            delay = max(delay, self._idle_interval_s)
        remaining = self._last_call + delay - time.monotonic()
        if remaining > 0:
            self._stop.wait(remaining)

    def fetch_next(self, limit: int | None = None) -> Page:
        """One GetRecords page of at most ``limit`` records (the reader's
        ``max_records`` when None or larger). An empty page with a next
        iterator is normal; ``next_iterator is None`` means the shard
        ended."""
        if limit is None or limit > self._max_records:
            limit = self._max_records
        self.wait_turn()
        while True:
            if self._iterator is None:
                self._iterator = self._new_iterator()
            self._last_call = time.monotonic()
            try:
                page = self._client.get_records(self._iterator, limit)
                break
            except IteratorExpired:
                self.iterator_renewals += 1
                log.info("shard %s iterator expired; resuming after %s",
                         self.shard_id, self._after or "the start position")
                self._iterator = None
        self._iterator = page.next_iterator
        if page.records:
            self._after = page.records[-1].sequence_number
        behind = page.millis_behind_latest
        self._caught_up = not behind
        return page
