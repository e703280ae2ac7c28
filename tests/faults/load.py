"""Load for the scenarios: a producer thread that puts records at a steady
pace and writes each one's shard, sequence number and fate into a Ledger.

``ReadingSource`` makes unique well-formed readings; ``poison.PoisonMix``
interleaves malformed records with them.
"""

import threading
import time
from datetime import datetime, timezone

import orjson

from tests.e2e.worker_harness import reading
from tests.faults.ledger import Expect, Ledger, Outgoing

# PutRecords takes at most 500 records per call.
PUT_RECORDS_LIMIT = 500

# Ten records every tenth of a second (about 60-80 a second once PutRecords
# latency is counted): a few hundred to a couple of thousand readings in a
# scenario's 15-40 s, light enough for two cores running several workers.
DEFAULT_PER_ROUND = 10
DEFAULT_PAUSE_S = 0.1


class ReadingSource:
    """Unique readings, round-robin over ``vens`` VENs (partition key =
    venId, as the IoT rule sets it)."""

    def __init__(self, vens: int = 20):
        self._vens = vens
        self._step = 0

    def next(self) -> list[Outgoing]:
        ven = self._step % self._vens
        payload = reading(ven, self._step // self._vens)
        self._step += 1
        at = datetime.fromtimestamp(payload["timestamp"], timezone.utc)
        expect = Expect.stored("reading", payload["venId"], at,
                               len(payload["loads"]))
        return [Outgoing(orjson.dumps(payload), payload["venId"], (expect,))]


class LoadProducer(threading.Thread):
    """Puts ``per_round`` records from ``source`` every ``pause_s`` until
    ``finish()``; failed entries of a PutRecords call are put again."""

    def __init__(self, client, stream: str, source=None,
                 per_round: int = DEFAULT_PER_ROUND,
                 pause_s: float = DEFAULT_PAUSE_S):
        super().__init__(name=f"load-{stream}", daemon=True)
        self._client = client
        self._stream = stream
        self._source = source or ReadingSource()
        self._per_round = per_round
        self._pause_s = pause_s
        self.ledger = Ledger()
        self.puts = 0  # stream records put (an aggregate counts once)
        # The slowest PutRecords call: a long one means the emulator itself
        # stalled, which shows up as a pause that no worker caused.
        self.slowest_put_s = 0.0
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                batch = []
                while len(batch) < self._per_round:
                    batch += self._source.next()
                self._put(batch)
                self._halt.wait(self._pause_s)
        except BaseException as exc:  # re-raised by finish()
            self.error = exc

    def _put(self, pending: list[Outgoing]) -> None:
        while pending:
            chunk = pending[:PUT_RECORDS_LIMIT]
            pending = pending[PUT_RECORDS_LIMIT:]
            started = time.monotonic()
            answer = self._client.put_records(
                StreamName=self._stream,
                Records=[{"Data": o.data, "PartitionKey": o.partition_key}
                         for o in chunk])
            self.slowest_put_s = max(self.slowest_put_s,
                                     time.monotonic() - started)
            for outgoing, result in zip(chunk, answer["Records"]):
                if "ErrorCode" in result:
                    pending.append(outgoing)
                    continue
                self.ledger.add(result["ShardId"], result["SequenceNumber"],
                                outgoing)
                self.puts += 1

    def finish(self) -> Ledger:
        """Stop putting; the ledger of everything that was put."""
        self._halt.set()
        self.join(60)
        if self.error is not None:
            raise self.error
        return self.ledger
