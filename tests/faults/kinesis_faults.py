"""Faults on the worker's Kinesis calls, decided by a seeded RNG.

Two ways in, one plan:

- ``FaultyKinesis`` wraps a boto3 client for a worker running in the test
  process (the client seam). It can also age shard iterators out after a
  short lifetime, which is how a five-minute iterator expiry is simulated.
- ``kinesis_proxy.KinesisFaultProxy`` applies the same plan on the wire, in
  front of LocalStack, for workers running as subprocesses.
"""

import random
import threading
import time
from dataclasses import dataclass, field

import botocore.exceptions
from botocore.exceptions import ClientError

THROTTLE = "throttle"
SERVER = "server"
# The call reached the service and did its work, but the answer never came
# back: the worker must retry without skipping or repeating records.
TIMEOUT = "timeout"

# Per operation: (fault, probability per call). About one call in four
# fails: enough that every retry path runs many times in a short test,
# while pages still get through between faults.
DEFAULT_PLAN = {
    "GetRecords": ((THROTTLE, 0.10), (SERVER, 0.08), (TIMEOUT, 0.08)),
    "GetShardIterator": ((THROTTLE, 0.10), (SERVER, 0.10), (TIMEOUT, 0.05)),
    "ListShards": ((THROTTLE, 0.15), (SERVER, 0.10)),
}

_METHODS = {"GetRecords": "get_records",
            "GetShardIterator": "get_shard_iterator",
            "ListShards": "list_shards"}


def throttle_code(operation: str) -> str:
    if operation == "GetRecords":
        return "ProvisionedThroughputExceededException"
    return "LimitExceededException"


def server_code(n: int) -> tuple[str, int]:
    return ("InternalFailure", 500) if n % 2 else ("ServiceUnavailable", 503)


@dataclass
class FaultDice:
    """Rolls the plan; thread-safe; counts what it injected."""

    seed: int
    plan: dict = field(default_factory=lambda: dict(DEFAULT_PLAN))
    injected: dict = field(default_factory=dict)

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def roll(self, operation: str) -> str | None:
        with self._lock:
            roll = self._rng.random()
            for fault, chance in self.plan.get(operation, ()):
                if roll < chance:
                    self.injected[fault] = self.injected.get(fault, 0) + 1
                    return fault
                roll -= chance
        return None

    def count(self, fault: str) -> None:
        with self._lock:
            self.injected[fault] = self.injected.get(fault, 0) + 1


def client_error(code: str, status: int, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"},
                        "ResponseMetadata": {"HTTPStatusCode": status}},
                       operation)


class FaultyKinesis:
    """A boto3 Kinesis client whose calls fail as the dice say, and whose
    shard iterators expire ``iterator_lifetime_s`` after they were issued."""

    def __init__(self, real, dice: FaultDice,
                 iterator_lifetime_s: float | None = None):
        self._real = real
        self._dice = dice
        self._lifetime = iterator_lifetime_s
        # Every iterator handed out, by issue time. NOTE: never pruned; a
        # scenario issues a few thousand at most.
        self._issued: dict[str, float] = {}
        self._lock = threading.Lock()
        self._calls = 0

    def __getattr__(self, name):
        target = getattr(self._real, name)
        operation = next((op for op, m in _METHODS.items() if m == name), None)
        if operation is None:
            return target

        def call(**kwargs):
            self._maybe_expire(kwargs.get("ShardIterator"))
            fault = self._dice.roll(operation)
            if fault == THROTTLE:
                raise client_error(throttle_code(operation), 400, operation)
            if fault == SERVER:
                with self._lock:
                    self._calls += 1
                    code, status = server_code(self._calls)
                raise client_error(code, status, operation)
            result = target(**kwargs)
            self._note_iterators(result)
            if fault == TIMEOUT:
                raise botocore.exceptions.ReadTimeoutError(
                    endpoint_url="http://injected")
            return result

        return call

    def _note_iterators(self, result: dict) -> None:
        if self._lifetime is None:
            return
        now = time.monotonic()
        with self._lock:
            for key in ("ShardIterator", "NextShardIterator"):
                if result.get(key):
                    self._issued[result[key]] = now

    def _maybe_expire(self, iterator: str | None) -> None:
        if self._lifetime is None or iterator is None:
            return
        with self._lock:
            issued = self._issued.get(iterator)
        if issued is not None and time.monotonic() - issued > self._lifetime:
            self._dice.count("expired_iterator")
            raise client_error("ExpiredIteratorException", 400, "GetRecords")
