"""LocalStack's Kinesis as the worker will use it, and localstack/stack.py."""

import os
import socket
import subprocess
import sys
import uuid

import pytest


@pytest.fixture
def run_stack(scripts_dir):
    """run_stack(*args, **env): localstack/stack.py as a subprocess."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(scripts_dir / "stack.py"), *args],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, **env},
        )

    return run


def _dead_endpoint() -> str:
    """An address where nothing listens (a port just freed by the OS)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_put_record_reads_back_byte_equal(kinesis_client, stream):
    payloads = [
        b'{"venId": "ven-0042", "usedPowerKw": 3.18}',
        b"\xf3\x89\x9a\xc2 not text \x00\xff",  # binary survives as is
    ]
    put = []
    for index, data in enumerate(payloads):
        answer = kinesis_client.put_record(
            StreamName=stream, Data=data, PartitionKey=f"key-{index}"
        )
        put.append((answer["ShardId"], answer["SequenceNumber"]))

    shard = kinesis_client.list_shards(StreamName=stream)["Shards"][0]
    iterator = kinesis_client.get_shard_iterator(
        StreamName=stream, ShardId=shard["ShardId"],
        ShardIteratorType="TRIM_HORIZON",
    )["ShardIterator"]
    page = kinesis_client.get_records(ShardIterator=iterator)

    assert [r["Data"] for r in page["Records"]] == payloads
    assert [r["PartitionKey"] for r in page["Records"]] == ["key-0", "key-1"]
    assert [(shard["ShardId"], r["SequenceNumber"]) for r in page["Records"]] \
        == put
    assert page["MillisBehindLatest"] == 0


def test_create_stream_yields_active_stream_with_shard_count(kinesis_client,
                                                            stack):
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    try:
        state = stack.create_stream(kinesis_client, name, 3)
        summary = kinesis_client.describe_stream_summary(StreamName=name)
    finally:
        stack.delete_stream(kinesis_client, name)

    assert state == stack.StreamState(name, open_shards=3, created=True)
    assert summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 3


def test_create_stream_existing_keeps_its_shard_count(kinesis_client, stack,
                                                       make_stream):
    name = make_stream(2)

    state = stack.create_stream(kinesis_client, name, 4)

    assert state == stack.StreamState(name, open_shards=2, created=False)
    shards = kinesis_client.list_shards(StreamName=name)["Shards"]
    assert len(shards) == 2


@pytest.mark.parametrize("stream", [4], indirect=True)
def test_stream_fixture_takes_shard_count(kinesis_client, stream):
    summary = kinesis_client.describe_stream_summary(StreamName=stream)
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 4


def test_cli_create_stream_then_again_with_other_count(
        localstack_endpoint, kinesis_client, stack, run_stack):
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    try:
        first = run_stack("create-stream", "--name", name, "--shards", "2",
                           "--endpoint", localstack_endpoint)
        second = run_stack("create-stream", "--name", name, "--shards", "5",
                            "--endpoint", localstack_endpoint)
        shards = kinesis_client.list_shards(StreamName=name)["Shards"]
    finally:
        stack.delete_stream(kinesis_client, name)

    assert (first.returncode, second.returncode) == (0, 0)
    assert first.stdout == f"created {name}: 2 shards, ACTIVE\n"
    assert second.stdout == (
        f"{name} exists with 2 open shards (asked for 5); left as it is\n"
    )
    assert len(shards) == 2


def test_cli_create_stream_unreachable_endpoint_fails_in_one_line(run_stack):
    endpoint = _dead_endpoint()

    done = run_stack("create-stream", "--name", "never", "--shards", "1",
                      "--endpoint", endpoint)

    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("FAILED: cannot reach Kinesis at " + endpoint)


def test_cli_up_reuses_the_running_localstack(localstack_endpoint, run_stack):
    done = run_stack("up")

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{localstack_endpoint}\n"
    assert "starting LocalStack" not in done.stderr


def test_cli_up_with_dead_explicit_endpoint_fails_in_one_line(run_stack):
    endpoint = _dead_endpoint()

    done = run_stack("up", LOCALSTACK_ENDPOINT=endpoint)

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"FAILED: LOCALSTACK_ENDPOINT={endpoint} does not answer "
        "/_localstack/health with Kinesis available"
    ]


def test_cli_status_reports_healthy_endpoint(localstack_endpoint, run_stack):
    done = run_stack("status", LOCALSTACK_ENDPOINT=localstack_endpoint)

    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == (
        f"endpoint  {localstack_endpoint} (healthy)"
    )
