"""The shard consumer with a fake reader and sink: what it stores, where it
stops, and that the in-flight byte budget always comes back."""

import collections
import threading
from datetime import datetime, timezone

import orjson

from worker.errors import LeaseLost
from worker.kinesis.client import Page, StreamRecord
from worker.records import DecodePolicy
from worker.runtime.consumer import ByteBudget, ShardConsumer
from worker.sink.batch import SHARD_END, BatchResult, LeaseToken

ARRIVED = datetime(2025, 12, 1, tzinfo=timezone.utc)


def _page(first_seq: int, n: int, ended: bool = False) -> Page:
    records = [StreamRecord(str(first_seq + i), orjson.dumps(
        {"venId": "ven-1", "timestamp": 1764547200 + first_seq + i,
         "usedPowerKw": 1.0}), "ven-1", ARRIVED) for i in range(n)]
    return Page(records, None if ended else "next", 0,
                size_bytes=sum(len(r.data) for r in records))


class FakeReader:
    max_records = 10_000

    def __init__(self, pages):
        self._pages = list(pages)
        self.limits = []

    def wait_turn(self) -> None:
        pass

    def fetch_next(self, limit=None) -> Page:
        self.limits.append(limit)
        return self._pages.pop(0)


class FakeSink:
    def __init__(self, fail_with=None):
        self.batches = []
        self._fail_with = fail_with

    def write(self, batch):
        if self._fail_with:
            raise self._fail_with
        self.batches.append(batch)
        return BatchResult(len(batch.items), 0, collections.Counter())

    def close(self):
        pass


def _run(reader, sink, budget):
    done = []
    consumer = ShardConsumer(
        LeaseToken("s", "shard-0", "me", 1), reader, lambda: sink,
        DecodePolicy(), budget, threading.Event(),
        lambda c, reason: done.append(reason))
    consumer.run()  # in this thread: the test waits for the end
    return done


def test_consumer_stores_every_page_and_checkpoints_shard_end():
    sink, budget = FakeSink(), ByteBudget(1 << 20)

    done = _run(FakeReader([_page(0, 3), _page(3, 2, ended=True)]), sink,
                budget)

    assert done == ["shard_end"]
    assert [len(b.items) for b in sink.batches] == [3, 2]
    assert sink.batches[0].checkpoint.sequence_number == "2"
    assert sink.batches[1].checkpoint.sequence_number == SHARD_END
    assert budget.used == 0


def test_lost_lease_returns_the_prefetched_pages_bytes():
    budget = ByteBudget(1 << 20)

    done = _run(FakeReader([_page(0, 3), _page(3, 3), _page(6, 3)]),
                FakeSink(fail_with=LeaseLost("moved")), budget)

    assert done == ["lease_lost"]
    assert budget.used == 0


def test_observer_summary_counts_batches_since_the_last_one():
    from worker.observe import Observability
    from worker.runtime.observer import RuntimeObserver

    settings = type("S", (), {"worker_id": "w", "stream_name": "s",
                              "lease_duration_s": 10.0, "metrics_port": 0})
    observer = RuntimeObserver(Observability.start(settings))
    result = BatchResult(3, 1, collections.Counter({"not_json": 2}))

    observer.batch_stored("shard-0", result, _page(0, 6), 0.1)
    first = observer.take_summary()
    second = observer.take_summary()

    assert first == {"batches": 1, "records": 6, "stored": 3,
                     "duplicates": 1, "rejected": 2, "inflight_bytes": 0}
    assert second["batches"] == 0


def _consumer(reader, budget):
    return ShardConsumer(
        LeaseToken("s", "shard-0", "me", 1), reader, FakeSink, DecodePolicy(),
        budget, threading.Event(), lambda c, reason: None)


def test_page_limit_takes_free_budget_but_never_less_than_a_fair_share():
    from worker.runtime.consumer import (FIRST_RECORD_ESTIMATE,
                                         PAGE_MEMORY_FACTOR)

    record = FIRST_RECORD_ESTIMATE * PAGE_MEMORY_FACTOR  # before any page
    budget = ByteBudget(record * 400)
    budget.join()
    budget.join()  # two shards: a fair page is a quarter, 100 records
    reader = FakeReader([])
    consumer = _consumer(reader, budget)

    idle_neighbour = consumer.page_limit()  # half of what is free
    budget.reserve(record * 360, lambda: False)  # the other shard's pages
    busy_neighbour = consumer.page_limit()
    reader.max_records = 50
    capped = consumer.page_limit()

    assert (idle_neighbour, busy_neighbour, capped) == (200, 100, 50)


def test_a_record_larger_than_the_share_is_still_fetched_one_a_page():
    budget = ByteBudget(1)
    reader = FakeReader([_page(0, 1), _page(1, 1, ended=True)])

    done = _run(reader, FakeSink(), budget)

    assert done == ["shard_end"]
    assert reader.limits == [1, 1]
    assert budget.used == 0
