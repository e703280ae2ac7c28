"""Throttling, 5xx answers and timeouts on the workers' Kinesis calls
(GetRecords, GetShardIterator, ListShards), about one call in four.

One worker runs in this process behind the client seam (timeouts there are
botocore ReadTimeoutErrors after the call did its work); the other is a
subprocess whose KINESIS_ENDPOINT is a fault-injecting HTTP proxy (timeouts
there are requests forwarded, then the connection closed unanswered).
"""

from tests.faults.kinesis_faults import (
    SERVER,
    THROTTLE,
    TIMEOUT,
    FaultDice,
    FaultyKinesis,
)
from tests.faults.kinesis_proxy import KinesisFaultProxy

SHARDS = 4
SEED_IN_PROCESS = 1
SEED_ON_THE_WIRE = 2
FAULTS = (THROTTLE, SERVER, TIMEOUT)
# Each fault this many times on each path before the load stops, so every
# retry path runs more than once (and a slow run still ends when they have).
MIN_EACH = 3


def test_kinesis_throttling_5xx_and_timeouts(scenario):
    scenario.make_stream(SHARDS)
    seam = FaultDice(SEED_IN_PROCESS)
    wire = FaultDice(SEED_ON_THE_WIRE)
    proxy = KinesisFaultProxy(scenario.endpoint, wire)
    try:
        scenario.start_inprocess("w1", lambda real: FaultyKinesis(real, seam),
                                 proxy=False)
        scenario.start_worker("w2", proxy=False, kinesis_endpoint=proxy.url)
        scenario.start_load()
        scenario.wait_progress(200)
        scenario.wait_for(
            lambda: all(dice.injected.get(fault, 0) >= MIN_EACH
                        for dice in (seam, wire) for fault in FAULTS),
            f"every fault injected {MIN_EACH} times on both paths")

        scenario.notes["injected at the seam"] = dict(seam.injected)
        scenario.notes["injected on the wire"] = dict(wire.injected)
        scenario.finish()
    finally:
        proxy.close()

    for dice in (seam, wire):
        for fault in FAULTS:
            assert dice.injected.get(fault, 0) >= MIN_EACH, dice.injected
