"""Faults injected at the client seam: throttling, 5xx, connection errors and
expired iterators on the worker's Kinesis calls. Nothing is lost or doubled.

The worker runs in this process (so the seam can be reached) against
LocalStack and real PostgreSQL."""

import itertools
import threading

import botocore.exceptions
from botocore.exceptions import ClientError

from worker.config import load_settings
from worker.kinesis.client import KinesisClient, make_boto3_client
from worker.observe import Observability
from worker.runtime import build_worker

from tests.e2e.worker_harness import (
    assert_exactly_once,
    put_readings,
    reading,
    stored_count,
    wait_until,
    worker_env,
)


def _client_error(code: str, status: int, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"},
                        "ResponseMetadata": {"HTTPStatusCode": status}},
                       operation)


# Per operation: every n-th call fails with the given fault, in turn.
FAULT_PLAN = {
    "get_records": [
        (3, lambda: _client_error(
            "ProvisionedThroughputExceededException", 400, "GetRecords")),
        (4, lambda: _client_error("ExpiredIteratorException", 400,
                                  "GetRecords")),
        (5, lambda: _client_error("InternalFailure", 500, "GetRecords")),
        (7, lambda: botocore.exceptions.EndpointConnectionError(
            endpoint_url="http://injected")),
    ],
    "get_shard_iterator": [
        (2, lambda: _client_error("ServiceUnavailable", 503,
                                  "GetShardIterator")),
    ],
    "list_shards": [
        (2, lambda: _client_error("LimitExceededException", 400,
                                  "ListShards")),
    ],
}


class FaultyKinesis:
    """A boto3 Kinesis client whose calls fail on a fixed schedule."""

    def __init__(self, real):
        self._real = real
        self._calls = {op: itertools.count(1) for op in FAULT_PLAN}
        self.injected: dict[str, int] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name):
        target = getattr(self._real, name)
        if name not in FAULT_PLAN:
            return target

        def call(**kwargs):
            with self._lock:
                n = next(self._calls[name])
            for every, fault in FAULT_PLAN[name]:
                if n % every == 0:
                    error = fault()
                    key = type(error).__name__
                    if isinstance(error, ClientError):
                        key = error.response["Error"]["Code"]
                    with self._lock:
                        self.injected[key] = self.injected.get(key, 0) + 1
                    raise error
            return target(**kwargs)

        return call


def test_injected_kinesis_faults_lose_and_double_nothing(
        pg_url, migrated_schema, make_stream, kinesis_client,
        localstack_endpoint):
    stream = make_stream(2)
    env = worker_env(pg_url, migrated_schema, localstack_endpoint, stream)
    env.update(WORKER_ID="faulty", MAX_RECORDS="50")  # many small pages
    settings = load_settings(environ=env)
    stop = threading.Event()
    observe = Observability.start(settings, settings.worker_id)
    faulty = FaultyKinesis(make_boto3_client(localstack_endpoint,
                                             settings.aws_region))
    # Tiny backoff: the test exercises the retry paths, not the waiting.
    kinesis = KinesisClient(faulty, stop=stop, on_retry=observe.metrics.retried,
                            backoff_initial_s=0.01, backoff_max_s=0.05)
    worker = build_worker(settings, stop, observe, kinesis=kinesis)
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        sent = put_readings(kinesis_client, stream,
                            [reading(v, s) for v in range(30)
                             for s in range(20)])
        wait_until(lambda: stored_count(pg_url, migrated_schema) >= len(sent),
                   f"{len(sent)} readings stored")
    finally:
        stop.set()
        worker.wake()
        runner.join(60)
        observe.close()

    assert not runner.is_alive()
    assert_exactly_once(pg_url, migrated_schema, sent)
    for code in ("ProvisionedThroughputExceededException",
                 "ExpiredIteratorException", "InternalFailure",
                 "EndpointConnectionError", "ServiceUnavailable"):
        assert faulty.injected.get(code, 0) > 0, f"{code} never injected"
    body, _ = observe.metrics.exposition()
    text = body.decode()
    assert 'cause="throttled"' in text and 'cause="server"' in text
