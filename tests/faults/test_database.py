"""PostgreSQL failing under the workers: their server connections terminated
mid-run, and the database unreachable for longer than a shard iterator
lives.

Each worker reaches the database through its own PgProxy. Terminating by
the proxy's ports touches only this scenario's sessions on a server other
people share; cutting the proxy makes the database unreachable to that
worker alone (connections reset, new ones refused).
"""

import collections
import random
import threading

from tests.e2e.worker_harness import TEST_LEASE_DURATION_S, lease_owners
from tests.faults import slow_commit
from tests.faults.kinesis_faults import FaultDice, FaultyKinesis
from tests.faults.workers import backend_states, terminate_backends

SEED = 5432
SHARDS = 2

# Terminations, a random 0.5-2 s apart: enough rounds that some land inside
# a batch transaction (widened a little below), few enough to stay short.
TERMINATION_ROUNDS = 6
TERMINATION_GAP_S = (0.5, 2.0)
LOAD_SLEEP_S = 0.1
COMMIT_SLEEP_S = 0.1

# Five minutes, scaled down: the in-process worker's iterators expire after
# ITERATOR_LIFETIME_S, and each outage lasts four times that (and four lease
# durations, so every lease expires while the database is away).
ITERATOR_LIFETIME_S = 3.0
OUTAGE_S = 4 * max(ITERATOR_LIFETIME_S, TEST_LEASE_DURATION_S)


def test_postgres_connections_terminated(scenario):
    rng = random.Random(SEED)
    slow_commit.install(scenario.pg_url, scenario.schema, LOAD_SLEEP_S,
                        COMMIT_SLEEP_S)
    scenario.make_stream(SHARDS)
    workers = [scenario.start_worker("w1"), scenario.start_worker("w2")]
    scenario.start_load()
    scenario.wait_progress(50)

    ended = collections.Counter()
    for _ in range(TERMINATION_ROUNDS):
        threading.Event().wait(rng.uniform(*TERMINATION_GAP_S))
        ports = [p for w in workers for p in w.proxy.upstream_ports()]
        states = backend_states(scenario.pg_url, ports)
        in_batch = sum(1 for state, _, _ in states if state != "idle")
        ended["sessions"] += terminate_backends(scenario.pg_url, ports)
        ended["inside a batch"] += in_batch
    scenario.wait_progress(50)

    scenario.notes["terminated"] = dict(ended)
    scenario.finish()
    assert ended["sessions"] >= TERMINATION_ROUNDS


def test_database_unreachable_past_iterator_lifetime(scenario):
    """Two outages. A stall: every byte held, calls hang, then the network
    heals; a batch held that long comes back to an expired iterator. A cut:
    connections reset and new ones refused; consumers whose batch cannot
    be stored exit and restart from the checkpoint."""
    scenario.make_stream(SHARDS)
    dice = FaultDice(SEED, plan={})  # no call faults: expiry only
    inproc = scenario.start_inprocess(
        "w1", lambda real: FaultyKinesis(real, dice, ITERATOR_LIFETIME_S))
    sub = scenario.start_worker("w2")
    proxies = [inproc.proxy, sub.proxy]
    scenario.start_load()
    scenario.wait_progress(100)
    # Only the in-process worker's iterators age at the seam: it must be
    # reading a shard when the stall begins.
    scenario.wait_for(
        lambda: lease_owners(scenario.pg_url, scenario.schema,
                             scenario.stream).get("w1", 0) > 0,
        "w1 holding a shard")

    for proxy in proxies:
        proxy.stall()
    threading.Event().wait(OUTAGE_S)
    for proxy in proxies:
        proxy.resume()
    scenario.wait_progress(100)
    expired = dice.injected.get("expired_iterator", 0)

    for proxy in proxies:
        proxy.cut()
    threading.Event().wait(OUTAGE_S)
    for proxy in proxies:
        proxy.restore()
    scenario.wait_progress(100)

    refused = sum(proxy.refused for proxy in proxies)
    scenario.notes["outages"] = f"stall and cut, {OUTAGE_S:.0f} s each"
    scenario.notes["iterators expired in the stall"] = expired
    scenario.notes["connections refused in the cut"] = refused
    scenario.finish()
    assert expired > 0
    assert refused > 0
