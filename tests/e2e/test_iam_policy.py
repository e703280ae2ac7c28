"""The IAM policies in deploy/ grant exactly what the code calls: every
Kinesis operation made during a full run (start-up, reading, a reshard and
its children, shutdown) is recorded at the client seam and compared with
the worker's policy; the operator's `scale` is compared with the operator's
policy."""

import json
import threading
from pathlib import Path

from worker.config import load_settings
from worker.kinesis.client import KinesisClient, make_boto3_client
from worker.observe import Observability
from worker.ops.scale import scale
from worker.runtime import build_worker

from tests.e2e.worker_harness import (
    assert_exactly_once,
    put_readings,
    reading,
    stored_count,
    wait_until,
    worker_env,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


class RecordingKinesis:
    """A boto3 Kinesis client that notes the API name of every call."""

    def __init__(self, real):
        self._real = real
        self.operations: set[str] = set()
        self._names = real.meta.method_to_api_mapping

    def __getattr__(self, name):
        target = getattr(self._real, name)
        if name not in self._names:
            return target

        def call(**kwargs):
            self.operations.add("kinesis:" + self._names[name])
            return target(**kwargs)

        return call


def _policy_actions(name: str) -> set[str]:
    policy = json.loads((DEPLOY / name).read_text())
    return {a for st in policy["Statement"] for a in st["Action"]}


def test_worker_policy_is_exactly_what_a_full_run_calls(
        pg_url, migrated_schema, make_stream, kinesis_client,
        localstack_endpoint):
    stream = make_stream(1)
    env = worker_env(pg_url, migrated_schema, localstack_endpoint, stream)
    env["WORKER_ID"] = "recorded"
    settings = load_settings(environ=env)
    stop = threading.Event()
    observe = Observability.start(settings, settings.worker_id)
    recording = RecordingKinesis(make_boto3_client(localstack_endpoint,
                                                   settings.aws_region))
    worker = build_worker(settings, stop, observe,
                          kinesis=KinesisClient(recording, stop=stop))
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        sent = put_readings(kinesis_client, stream,
                            [reading(v, 0) for v in range(20)])
        wait_until(lambda: stored_count(pg_url, migrated_schema) >= 20,
                   "first readings stored")
        # A reshard: the parent ends, discovery finds the children.
        parent = kinesis_client.list_shards(StreamName=stream)["Shards"][0]
        kinesis_client.split_shard(StreamName=stream,
                                   ShardToSplit=parent["ShardId"],
                                   NewStartingHashKey=str(2**127))
        wait_until(lambda: kinesis_client.describe_stream_summary(
            StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
            == "ACTIVE", "split finished")
        sent += put_readings(kinesis_client, stream,
                             [reading(v, 1) for v in range(20)])
        wait_until(lambda: stored_count(pg_url, migrated_schema) >= 40,
                   "children's readings stored")
    finally:
        stop.set()
        worker.wake()
        runner.join(60)
        observe.close()

    assert_exactly_once(pg_url, migrated_schema, sent)
    assert recording.operations == _policy_actions("iam-policy.json")


def test_operator_policy_covers_scale(localstack_endpoint, make_stream,
                                      pg_url, migrated_schema, capsys):
    stream = make_stream(1)
    env = worker_env(pg_url, migrated_schema, localstack_endpoint, stream)
    settings = load_settings(environ=env)
    recording = RecordingKinesis(make_boto3_client(localstack_endpoint,
                                                   settings.aws_region))

    code = scale(settings, 2, kinesis=KinesisClient(recording))

    assert code == 0
    assert recording.operations <= _policy_actions("iam-operator-policy.json")
    assert "kinesis:UpdateShardCount" in recording.operations
