"""The fast GetRecords path reads the same pages as boto3, raises the same
worker errors for the same answers, and hands a page it does not understand
back to boto3.

A stdlib HTTP server in the test answers every call with a canned status and
body, so both paths see byte-identical answers."""

import base64
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker.kinesis.client import (
    IteratorExpired,
    KinesisClient,
    RetriableKinesisError,
    StreamNotFound,
    make_boto3_client,
)
from worker.kinesis.fast_records import fits


class Canned:
    """What the server answers, and the GetRecords calls it saw."""

    def __init__(self):
        self.status = 200
        self.body = b"{}"
        self.calls = 0


@pytest.fixture
def canned():
    state = Canned()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers["X-Amz-Target"].endswith(".GetRecords"):
                state.calls += 1
            self.send_response(state.status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def clients(url: str) -> tuple[KinesisClient, KinesisClient]:
    """(boto3 path, fast path) over one boto3 client; a set stop event makes
    each call a single attempt, so errors surface instead of retrying."""
    boto = make_boto3_client(url, "us-east-1")
    stop = threading.Event()
    stop.set()
    return (KinesisClient(boto, stop=stop, fast_get_records=False),
            KinesisClient(boto, stop=stop))


def record(seq: str, data: bytes, arrived, key: str = "ven-1") -> dict:
    return {"SequenceNumber": seq, "ApproximateArrivalTimestamp": arrived,
            "Data": base64.b64encode(data).decode(), "PartitionKey": key}


def as_tuples(page):
    return ([(r.sequence_number, r.data, r.partition_key, r.arrived_at)
             for r in page.records],
            page.next_iterator, page.millis_behind_latest,
            page.child_shard_ids, page.size_bytes)


def test_get_records_fast_page_equals_boto3_page(canned):
    canned.body = json.dumps({
        "Records": [record("4959001", b'{"venId":"ven-1"}', 1764547201.25),
                    record("4959002", b"\x00\xff raw", 1764547202, "k2"),
                    record("4959003", b"", 1764547203.5)],
        "NextShardIterator": "it-2", "MillisBehindLatest": 1500,
    }).encode()
    slow, fast = clients(canned.url)

    expected = slow.get_records("it-1", 100)
    got = fast.get_records("it-1", 100)

    assert as_tuples(got) == as_tuples(expected)
    assert got.records[0].arrived_at == datetime(
        2025, 12, 1, 0, 0, 1, 250000, tzinfo=timezone.utc)
    assert got.size_bytes == 17 + 6
    assert canned.calls == 2


def test_get_records_fast_shard_end_gives_children(canned):
    canned.body = json.dumps({
        "Records": [record("4959009", b"last", 1764547209)],
        "MillisBehindLatest": 0,
        "ChildShards": [
            {"ShardId": "shardId-000000000002",
             "ParentShards": ["shardId-000000000000"],
             "HashKeyRange": {"StartingHashKey": "0",
                              "EndingHashKey": "1"}},
            {"ShardId": "shardId-000000000003",
             "ParentShards": ["shardId-000000000000"],
             "HashKeyRange": {"StartingHashKey": "2",
                              "EndingHashKey": "3"}},
        ],
    }).encode()
    slow, fast = clients(canned.url)

    got = fast.get_records("it-1", 100)

    assert as_tuples(got) == as_tuples(slow.get_records("it-1", 100))
    assert got.next_iterator is None
    assert got.child_shard_ids == ["shardId-000000000002",
                                   "shardId-000000000003"]


@pytest.mark.parametrize(("status", "code", "error", "cause"), [
    (400, "ProvisionedThroughputExceededException", RetriableKinesisError,
     "throttled"),
    (400, "KMSThrottlingException", RetriableKinesisError, "throttled"),
    (500, "InternalFailure", RetriableKinesisError, "server"),
    (503, "ServiceUnavailable", RetriableKinesisError, "server"),
    (400, "ExpiredIteratorException", IteratorExpired, None),
    (400, "ResourceNotFoundException", StreamNotFound, None),
])
def test_get_records_fast_errors_classified_as_boto3(canned, status, code,
                                                     error, cause):
    canned.status = status
    canned.body = json.dumps({"__type": code, "message": "canned"}).encode()
    slow, fast = clients(canned.url)

    with pytest.raises(error) as from_boto3:
        slow.get_records("it-1", 100)
    with pytest.raises(error) as from_fast:
        fast.get_records("it-1", 100)

    assert type(from_fast.value) is type(from_boto3.value)
    assert str(from_fast.value) == str(from_boto3.value)
    assert getattr(from_fast.value, "cause", None) == cause


def test_get_records_fast_doubt_falls_back_to_boto3_for_good(canned):
    # botocore reads an ISO arrival time; the fast parser expects a number,
    # so it must hand this page to boto3 rather than guess.
    canned.body = json.dumps({
        "Records": [record("4959001", b"one", "2025-12-01T00:00:01Z")],
        "NextShardIterator": "it-2", "MillisBehindLatest": 0,
    }).encode()
    slow, fast = clients(canned.url)

    first = fast.get_records("it-1", 100)
    assert canned.calls == 2  # asked fast, then boto3 with the same iterator
    second = fast.get_records("it-1", 100)

    assert canned.calls == 3  # boto3 only, from then on
    assert as_tuples(first) == as_tuples(second)
    assert first.records[0].data == b"one"
    assert first.records[0].arrived_at == datetime(
        2025, 12, 1, 0, 0, 1, tzinfo=timezone.utc)


def test_get_records_fast_not_used_for_a_wrapped_client(canned):
    class Wrapped:
        def __init__(self, real):
            self._real = real

        def __getattr__(self, name):
            return getattr(self._real, name)

    boto = make_boto3_client(canned.url, "us-east-1")

    assert fits(boto)
    assert not fits(Wrapped(boto))
    assert KinesisClient(Wrapped(boto))._fast is None


def test_get_records_fast_answered_by_moto():
    # moto answers at botocore's before-send event; the fast path offers
    # its request there too, so moto-based tests keep working.
    import boto3
    from moto import mock_aws

    with mock_aws():
        boto = boto3.client("kinesis", region_name="us-east-1",
                            aws_access_key_id="test",
                            aws_secret_access_key="test")
        boto.create_stream(StreamName="s", ShardCount=1)
        boto.put_record(StreamName="s", Data=b"hello", PartitionKey="k")
        client = KinesisClient(boto)
        iterator = client.get_shard_iterator("s", "shardId-000000000000",
                                             "TRIM_HORIZON")

        page = client.get_records(iterator, 10)

    assert client._fast is not None and not client._fast_doubted
    assert [(r.data, r.partition_key) for r in page.records] == [
        (b"hello", "k")]


@pytest.mark.parametrize("status", [500, 503])
def test_boto3_makes_one_attempt_per_call_our_backoff_does_the_rest(
        canned, status):
    # The SDK retrying underneath would multiply with the client's own
    # backoff (and hide throttling from its counters).
    canned.status = status
    canned.body = json.dumps({"__type": "InternalFailure",
                              "message": "canned"}).encode()
    slow, _ = clients(canned.url)

    with pytest.raises(RetriableKinesisError):
        slow.get_records("it-1", 100)

    assert canned.calls == 1
