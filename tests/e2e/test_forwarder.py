"""The IoT-rule forwarder between the real Mosquitto and LocalStack.

Other sessions may publish on volttron/metering at the same time, and every
forwarder subscribed there forwards their messages too; each test marks its
payloads with a fresh nonce and reads back only those.
"""

import json
import re
import signal
import subprocess
import sys
import uuid

import pytest


def _metering(nonce: str, ven_id: str | None, number: int) -> bytes:
    """A contract-shaped reading (spacing and key order kept as sent)."""
    reading = {"timestamp": 1764547200 + number, "usedPowerKw": 3.18,
               "message_num": number, "nonce": nonce}
    if ven_id is not None:
        reading = {"venId": ven_id, **reading}
    return json.dumps(reading, indent=1).encode()


def _ours(nonce: str):
    return lambda record: nonce.encode() in record["Data"]


def test_forwards_payload_bytes_unchanged_with_constant_key(
        stream, start_forwarder, mqtt_publish, read_stream):
    nonce = uuid.uuid4().hex
    payloads = [_metering(nonce, "ven-0042", n) for n in range(20)]
    payloads.append(b"\xff\xfe not JSON " + nonce.encode() + b" \x00")
    start_forwarder(stream)  # the production rule's key: "iot"

    mqtt_publish(payloads)
    records = read_stream(stream, len(payloads), match=_ours(nonce))

    assert [r["Data"] for r in records] == payloads  # one shard: in order
    assert {r["PartitionKey"] for r in records} == {"iot"}


@pytest.mark.parametrize("stream", [3], indirect=True)
def test_ven_id_key_with_fallback_and_per_ven_order(
        stream, start_forwarder, mqtt_publish, read_stream):
    nonce = uuid.uuid4().hex
    vens = ["ven-a", "ven-b", "ven-c", "ven-d"]
    payloads = [_metering(nonce, vens[n % 4], n) for n in range(40)]
    no_ven = _metering(nonce, None, 99)
    not_json = b"garbage " + nonce.encode()
    start_forwarder(stream, "--partition-key", "${venId}",
                    "--fallback-key", "no-ven")

    mqtt_publish(payloads + [no_ven, not_json])
    records = read_stream(stream, len(payloads) + 2, match=_ours(nonce))

    key_of = {r["Data"]: r["PartitionKey"] for r in records}
    assert len(key_of) == len(payloads) + 2
    for payload in payloads:
        assert key_of[payload] == json.loads(payload)["venId"]
    assert key_of[no_ven] == key_of[not_json] == "no-ven"

    for ven in vens:
        mine = [r for r in records if r["PartitionKey"] == ven]
        assert len({r["ShardId"] for r in mine}) == 1  # a key maps to a shard
        assert [r["Data"] for r in mine] == \
            [p for p in payloads if json.loads(p)["venId"] == ven]


@pytest.mark.parametrize("template", ["${newuuid()}", "${topic()}"])
def test_function_keys(template, stream, start_forwarder, mqtt_publish,
                       read_stream):
    nonce = uuid.uuid4().hex
    payloads = [_metering(nonce, "ven-1", n) for n in range(5)]
    start_forwarder(stream, "--partition-key", template)

    mqtt_publish(payloads)
    records = read_stream(stream, len(payloads), match=_ours(nonce))

    keys = [r["PartitionKey"] for r in records]
    if template == "${topic()}":
        assert keys == ["volttron/metering"] * len(payloads)
    else:
        assert len(set(keys)) == len(payloads)
        assert all(uuid.UUID(key).version == 4 for key in keys)


def test_sigterm_puts_held_messages_and_exits_zero(
        stream, start_forwarder, mqtt_publish, read_stream):
    nonce = uuid.uuid4().hex
    payloads = [_metering(nonce, "ven-9", n) for n in range(7)]
    # A linger far longer than the test: the messages are still held in the
    # forwarder when SIGTERM arrives, so only the shutdown flush puts them.
    # Keyed by the nonce, so the log tells ours from other sessions' ones.
    forwarder = start_forwarder(stream, "--linger-ms", "600000",
                                "--partition-key", "${nonce}",
                                "--log-level", "DEBUG")

    mqtt_publish(payloads)
    forwarder.wait_for_log(f"key {nonce}", count=len(payloads))
    held = read_stream(stream, None, match=_ours(nonce))
    exit_code = forwarder.stop(signal.SIGTERM)
    records = read_stream(stream, len(payloads), match=_ours(nonce))

    assert held == []
    assert exit_code == 0
    assert [r["Data"] for r in records] == payloads
    assert {r["PartitionKey"] for r in records} == {nonce}
    summary = re.search(r"stopped: (\d+) forwarded, 0 given up", forwarder.log())
    assert summary and int(summary.group(1)) >= len(payloads)


def test_missing_stream_fails_in_one_line(localstack_endpoint, scripts_dir):
    done = subprocess.run(
        [sys.executable, str(scripts_dir / "forwarder.py"),
         "--stream", f"absent-{uuid.uuid4().hex[:8]}",
         "--endpoint", localstack_endpoint],
        capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("FAILED: stream absent-")
