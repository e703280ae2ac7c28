"""``scale`` against LocalStack: a 2-shard stream goes to 4 under a running
worker, which takes the new shards without a restart while every reading,
before and after, is stored exactly once; counts Kinesis would refuse are
refused here first, in one line."""

import signal

import psycopg
import pytest

from tests.e2e.worker_harness import (  # noqa: F401 (start_worker fixture)
    Producer,
    assert_exactly_once,
    lease_owners,
    start_worker,
    stored_count,
    wait_until,
)
from worker.config import Settings
from worker.errors import ConfigError, WorkerError
from worker.kinesis.client import KinesisClient, make_boto3_client
from worker.ops.model import ENDED, READING
from worker.ops.scale import allowed_range, scale
from worker.ops.status import collect_status


def ops_settings(pg_url, schema, endpoint, stream) -> Settings:
    return Settings(stream_name=stream, database_url=pg_url,
                    pg_schema=schema, kinesis_endpoint=endpoint)


def open_shards(client, stream: str) -> list[dict]:
    return [s for s in client.list_shards(StreamName=stream)["Shards"]
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


def children_stored(pg_url, schema, stream, children) -> int:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            f'SELECT coalesce(sum(records_stored), 0) FROM "{schema}".'
            "shard_leases WHERE stream_name = %s AND shard_id = ANY(%s)",
            (stream, children)).fetchone()[0]


def test_scale_to_4_under_a_running_worker(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client, start_worker, capsys):
    stream = make_stream(2)
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            stream)
    producer = Producer(kinesis_client, stream)
    producer.start()
    worker = start_worker("w-scale", stream)
    wait_until(lambda: stored_count(pg_url, migrated_schema) > 50,
               "readings flowing")

    assert scale(settings, 4) == 0

    out = capsys.readouterr().out
    children = sorted(s["ShardId"] for s in open_shards(kinesis_client,
                                                        stream))
    assert len(children) == 4
    assert "2 -> 4 open shards" in out
    assert all(child in out for child in children)
    # The worker finds the children, finishes the parents, and takes them.
    wait_until(lambda: lease_owners(pg_url, migrated_schema, stream)
               == {"w-scale": 4}, "the worker holding the 4 new shards")
    mark = len(producer.sent)
    wait_until(lambda: len(producer.sent) > mark + 200,
               "readings written after the scale")
    sent = producer.finish()
    wait_until(lambda: stored_count(pg_url, migrated_schema) >= len(sent),
               f"{len(sent)} readings stored")
    assert children_stored(pg_url, migrated_schema, stream, children) > 0

    after = collect_status(settings)
    states = {s.shard_id: s.state for s in after.shards}
    assert [states[c] for c in children] == [READING] * 4
    assert sorted(states.values()).count(ENDED) == 2
    assert after.totals.open_shards == 4
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert_exactly_once(pg_url, migrated_schema, sent)


def test_scale_refuses_more_than_doubling(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client):
    stream = make_stream(1)
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            stream)

    with pytest.raises(ConfigError, match="from 1 open shards choose 1 to 2, "
                                          r"or reach 3 in steps \(2 then 3\)"):
        scale(settings, 3)

    assert len(open_shards(kinesis_client, stream)) == 1


def test_scale_to_the_current_count_changes_nothing(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client, capsys):
    stream = make_stream(2)
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            stream)

    assert scale(settings, 2) == 0

    assert "already has 2 open shard(s)" in capsys.readouterr().out
    assert len(kinesis_client.list_shards(StreamName=stream)["Shards"]) == 2


def test_scale_of_a_missing_stream_is_one_clear_error(
        pg_url, migrated_schema, localstack_endpoint):
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            "e2e-no-such-stream")

    with pytest.raises(ConfigError, match="does not exist"):
        scale(settings, 2)


class StuckUpdating:
    """A boto3 Kinesis client whose stream never reports ACTIVE again once
    a shard count change was asked for: a reshard that outlasts the wait."""

    def __init__(self, client):
        self._client = client
        self.asked = False

    def update_shard_count(self, **kwargs):
        self.asked = True
        return self._client.update_shard_count(**kwargs)

    def describe_stream_summary(self, **kwargs):
        answer = self._client.describe_stream_summary(**kwargs)
        if self.asked:
            answer["StreamDescriptionSummary"]["StreamStatus"] = "UPDATING"
        return answer

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_scale_that_outlasts_the_wait_says_so(
        pg_url, migrated_schema, localstack_endpoint, make_stream,
        kinesis_client):
    stream = make_stream(1)
    settings = ops_settings(pg_url, migrated_schema, localstack_endpoint,
                            stream)
    stuck = StuckUpdating(make_boto3_client(localstack_endpoint, "us-east-1"))

    with pytest.raises(WorkerError, match="still UPDATING after .* the "
                                          "change was accepted"):
        scale(settings, 2, kinesis=KinesisClient(stuck), deadline_s=0.5,
              poll_interval_s=0.1)

    # The real reshard goes on; the stream can only be deleted once ACTIVE.
    wait_until(lambda: kinesis_client.describe_stream_summary(
        StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
        == "ACTIVE", "the real reshard to finish")
    assert len(open_shards(kinesis_client, stream)) == 2


@pytest.mark.parametrize("current, expected", [
    (1, (1, 2)), (2, (1, 4)), (3, (2, 6)), (7000, (3500, 10_000))])
def test_allowed_range_is_half_to_double(current, expected):
    assert allowed_range(current) == expected
