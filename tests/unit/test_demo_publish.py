"""The demo's direct publisher: what Kinesis refused is put again, what it
accepted is counted once, and a refusal no retry can cure ends the run."""

import threading

import botocore.exceptions
import pytest

from worker.demo.fleet import READING, Outgoing
from worker.demo.publish import PUT_MAX_RECORDS, PutPublisher
from worker.errors import WorkerError

THROTTLED = "ProvisionedThroughputExceededException"


class FakeKinesis:
    """PutRecords that refuses the entries ``refuse(call, index)`` names,
    or raises ``errors`` first, one per call."""

    def __init__(self, refuse=lambda call, index: None, errors=()):
        self.calls: list[list[bytes]] = []
        self._refuse = refuse
        self._errors = list(errors)

    def put_records(self, StreamName, Records):
        self.calls.append([entry["Data"] for entry in Records])
        if self._errors:
            raise self._errors.pop(0)
        results = []
        for index, _ in enumerate(Records):
            code = self._refuse(len(self.calls), index)
            results.append({"ErrorCode": code, "ErrorMessage": "no"} if code
                           else {"SequenceNumber": str(index)})
        failed = sum("ErrorCode" in result for result in results)
        return {"FailedRecordCount": failed, "Records": results}


def records(count: int) -> list[Outgoing]:
    return [Outgoing(f"r{i}".encode(), f"ven-{i}", READING)
            for i in range(count)]


def publisher(client, accepted: list) -> PutPublisher:
    return PutPublisher(client, "s", accepted.extend, threading.Event(),
                        backoff_initial_s=0.001)


def test_refused_entries_are_put_again_and_everything_counted_once():
    # The first call refuses every third entry; later calls accept all.
    client = FakeKinesis(lambda call, index: THROTTLED
                         if call == 1 and index % 3 == 0 else None)
    accepted: list[Outgoing] = []

    publisher(client, accepted).publish(records(9))

    assert sorted(r.data for r in accepted) == sorted(
        r.data for r in records(9))
    assert client.calls[1] == [b"r0", b"r3", b"r6"]
    assert len(client.calls) == 2


def test_a_connection_error_is_retried():
    client = FakeKinesis(errors=[botocore.exceptions.EndpointConnectionError(
        endpoint_url="http://127.0.0.1:4566")])
    accepted: list[Outgoing] = []

    publisher(client, accepted).publish(records(3))

    assert len(client.calls) == 2
    assert [r.data for r in accepted] == [b"r0", b"r1", b"r2"]


def test_a_refusal_no_retry_cures_fails_with_the_code_and_counts_the_rest():
    client = FakeKinesis(lambda call, index: "AccessDeniedException"
                         if index == 1 else None)
    accepted: list[Outgoing] = []

    with pytest.raises(WorkerError, match="AccessDeniedException"):
        publisher(client, accepted).publish(records(3))

    assert [r.data for r in accepted] == [b"r0", b"r2"]


def test_large_rounds_go_out_in_calls_of_at_most_500_records():
    client = FakeKinesis()
    accepted: list[Outgoing] = []

    publisher(client, accepted).publish(records(1201))

    assert [len(call) for call in client.calls] == [PUT_MAX_RECORDS,
                                                    PUT_MAX_RECORDS, 201]
    assert len(accepted) == 1201
