"""Batching and retrying puts in the IoT-rule forwarder (localstack/
forwarder.py), against a stub Kinesis client: faults injected at the one
seam, sleeps recorded instead of taken."""

import logging

import botocore.exceptions
import pytest
from localstack_scripts import load_script

fw = load_script("forwarder")


NO_WAIT = fw.Backoff(initial=0)


def _refused(code: str, status: int = 400) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "stub"},
         "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutRecords",
    )


class StubKinesis:
    """Answers PutRecords from a script: each step is an exception to raise,
    or a list of per-record error codes (None = stored)."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls: list[list[bytes]] = []
        self.stored: list[tuple[bytes, str]] = []

    def put_records(self, StreamName, Records):
        self.calls.append([r["Data"] for r in Records])
        step = self.script.pop(0) if self.script else [None] * len(Records)
        if isinstance(step, Exception):
            raise step
        results = []
        for record, code in zip(Records, step):
            if code is None:
                self.stored.append((record["Data"], record["PartitionKey"]))
                results.append({"SequenceNumber": "1", "ShardId": "s"})
            else:
                results.append({"ErrorCode": code, "ErrorMessage": "stub"})
        failed = sum(code is not None for code in step)
        return {"FailedRecordCount": failed, "Records": results}


def _messages(count: int, size: int = 10) -> list:
    return [fw.Message("volttron/metering", bytes([65 + n % 26]) * size, "k")
            for n in range(count)]


# --- BatchBuilder --------------------------------------------------------


def test_batch_builder_is_full_at_max_records():
    batch = fw.BatchBuilder(max_records=3)
    pushed = [batch.add(m) for m in _messages(3)]

    assert pushed == [None, None, None]
    assert batch.full
    assert len(batch.take()) == 3 and len(batch) == 0


def test_batch_builder_pushes_out_what_would_exceed_max_bytes():
    batch = fw.BatchBuilder(max_bytes=35)
    first, second, third = _messages(3, size=10)  # 11 bytes with the key

    assert batch.add(first) is None
    assert batch.add(second) is None
    assert batch.add(third) is None  # 33 bytes: fits
    fourth = _messages(1, size=10)[0]
    assert batch.add(fourth) == [first, second, third]
    assert batch.take() == [fourth]


# --- put_with_retry ------------------------------------------------------


def test_put_retries_only_throttled_records():
    batch = _messages(4)
    stub = StubKinesis(
        [None, "ProvisionedThroughputExceededException", None,
         "InternalFailure"],
    )
    sleeps = []

    given_up = fw.put_with_retry(stub, "s", batch, NO_WAIT, sleeps.append)

    assert given_up == []
    assert stub.calls[1] == [batch[1].payload, batch[3].payload]
    assert sorted(d for d, _ in stub.stored) == sorted(m.payload for m in batch)
    assert sleeps == [0]


@pytest.mark.parametrize("fault", [
    _refused("ProvisionedThroughputExceededException"),
    _refused("SomethingNew", status=503),  # any 5xx is worth retrying
    botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
    botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"),
])
def test_put_retries_whole_call_failures(fault):
    batch = _messages(3)
    stub = StubKinesis(fault, fault)
    sleeps = []

    given_up = fw.put_with_retry(stub, "s", batch, NO_WAIT, sleeps.append)

    assert given_up == []
    assert len(stub.calls) == 3
    assert [d for d, _ in stub.stored] == [m.payload for m in batch]
    assert len(sleeps) == 2


def test_put_gives_up_non_retriable_call_at_once():
    batch = _messages(2)
    stub = StubKinesis(_refused("ResourceNotFoundException"))

    given_up = fw.put_with_retry(stub, "s", batch, NO_WAIT, lambda s: None)

    assert given_up == [(m, "ResourceNotFoundException") for m in batch]
    assert len(stub.calls) == 1


def test_put_gives_up_after_max_attempts_with_last_code():
    batch = _messages(2)
    throttled = ["ProvisionedThroughputExceededException"]
    stub = StubKinesis(*[[None] + throttled] + [throttled] * 10)
    sleeps = []

    given_up = fw.put_with_retry(stub, "s", batch, NO_WAIT, sleeps.append,
                                 max_attempts=4)

    assert given_up == [(batch[1], "ProvisionedThroughputExceededException")]
    assert [d for d, _ in stub.stored] == [batch[0].payload]
    assert len(stub.calls) == 4 and len(sleeps) == 3


def test_backoff_grows_to_its_cap():
    class Top:  # a "random" source that always picks the upper bound
        def uniform(self, low, high):
            return high

    backoff = fw.Backoff(initial=0.1, cap=1.0, rng=Top())
    assert [backoff.delay(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1, 1]


# --- Forwarder (no broker: messages handed in as the MQTT thread would) --


def _forwarder(stub, template="${venId}", max_batch=500):
    return fw.Forwarder(stub, "s", fw.parse_template(template), 0.01,
                        max_batch)


def test_forwarder_close_puts_everything_accepted():
    stub = StubKinesis()
    forwarder = _forwarder(stub, max_batch=4)
    forwarder.start()
    payloads = [b'{"venId": "v%d"}' % n for n in range(10)]

    for payload in payloads:
        forwarder.accept("volttron/metering", payload)
    forwarder.close()

    assert stub.stored == [(p, "v%d" % n) for n, p in enumerate(payloads)]
    assert all(len(call) <= 4 for call in stub.calls)
    assert (forwarder.forwarded, forwarder.given_up) == (10, 0)


def test_forwarder_drops_oversized_message_with_warning(caplog):
    stub = StubKinesis()
    forwarder = _forwarder(stub, template="iot")
    forwarder.start()
    big = b"x" * fw.MAX_RECORD_BYTES  # the key makes it too big

    with caplog.at_level(logging.WARNING, logger="forwarder"):
        forwarder.accept("volttron/metering", big)
        forwarder.accept("volttron/metering", b"small")
        forwarder.close()

    assert stub.stored == [(b"small", "iot")]
    assert (forwarder.forwarded, forwarder.given_up) == (1, 1)
    assert "1 MiB record limit" in caplog.text


def test_forwarder_logs_each_message_it_gives_up(caplog):
    denied = _refused("AccessDeniedException")
    stub = StubKinesis(denied, denied)  # one or two batches: both refused
    forwarder = _forwarder(stub, template="iot")
    forwarder.start()

    with caplog.at_level(logging.WARNING, logger="forwarder"):
        forwarder.accept("volttron/metering", b"one")
        forwarder.accept("volttron/metering", b"two")
        forwarder.close()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("AccessDeniedException" in r.getMessage() for r in warnings)
    assert (forwarder.forwarded, forwarder.given_up) == (0, 2)
