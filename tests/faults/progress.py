"""How long progress stalled: a background sampler of records processed.

Processed means stored, counted as a duplicate, or rejected: the running
totals the fenced commit moves on each lease row. A shard pauses while its
count does not grow although the ledger holds records put to it and not yet
processed. The figure reported is the longest pause of any shard: a shard
stuck behind a paused worker delays its VENs' readings even while the other
shards flow. Counting starts with the first record processed, so worker
start-up is not a pause.
"""

import logging
import threading
import time

import psycopg

log = logging.getLogger(__name__)

# Fine enough to see a stall of a second, cheap enough (one small query)
# to run beside the workers on two cores.
SAMPLE_INTERVAL_S = 0.2

_PROCESSED_SQL = (
    "SELECT shard_id, records_stored + duplicates_dropped + records_rejected "
    "FROM shard_leases WHERE stream_name = %s"
)


class ProgressSampler(threading.Thread):
    def __init__(self, pg_url: str, schema: str, stream: str, ledger):
        super().__init__(name=f"progress-{stream}", daemon=True)
        self._pg_url = pg_url
        self._schema = schema
        self._stream = stream
        self._ledger = ledger
        self._halt = threading.Event()
        self._by_shard: dict[str, int] = {}
        self._since: dict[str, float] = {}  # last growth or catch-up
        self._t0 = time.monotonic()
        self.processed = 0
        self.longest_pause_s = 0.0
        self.longest_pause_shard = ""
        # When the longest pause began, in seconds after the sampler started.
        self.longest_pause_at_s = 0.0

    def run(self) -> None:
        conn = None
        while not self._halt.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self._pg_url, autocommit=True)
                    conn.execute(f'SET search_path = "{self._schema}"')
                rows = conn.execute(_PROCESSED_SQL, (self._stream,)).fetchall()
            except psycopg.Error as exc:
                # The sampler's own connection is direct, never cut by a
                # scenario; a failure here is the server itself.
                log.warning("progress sample failed: %s", exc)
                conn = None
            else:
                self._sample(dict(rows), self._ledger.per_shard())
            self._halt.wait(SAMPLE_INTERVAL_S)
        if conn is not None:
            conn.close()

    def _sample(self, done: dict[str, int], sent: dict[str, int]) -> None:
        now = time.monotonic()
        total = sum(done.values())
        for shard, count in sent.items():
            grew = done.get(shard, 0) > self._by_shard.get(shard, 0)
            caught_up = done.get(shard, 0) >= count
            if grew or caught_up or not total or shard not in self._since:
                self._since[shard] = now
            paused = now - self._since[shard]
            if paused > self.longest_pause_s:
                self.longest_pause_s = paused
                self.longest_pause_shard = shard
                self.longest_pause_at_s = self._since[shard] - self._t0
        self._by_shard = done
        self.processed = total

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
