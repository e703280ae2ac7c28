"""A worker paused (SIGSTOP) for several lease durations, then resumed
(SIGCONT), twice: once between batches, when the other worker takes its
expired leases and the resumed worker's late commit must fail its fence;
once in the middle of a batch. Then its open transaction keeps the lease row
locked, so no one can take that shard until it wakes: the report notes who
held leases at the end of each pause, and the longest pause shows the
stall."""

import signal
import threading

from tests.e2e.worker_harness import TEST_LEASE_DURATION_S, lease_owners
from tests.faults import slow_commit
from tests.faults.workers import backend_states

SHARDS = 2

# Four lease durations: the lease has expired and been taken well before
# the worker wakes up.
PAUSE_S = 4 * TEST_LEASE_DURATION_S

# A load window wide enough to stop the worker inside it.
LOAD_SLEEP_S = 0.3
COMMIT_SLEEP_S = 0.05


def _idle(states: list[tuple]) -> bool:
    """No transaction open on any of the worker's sessions."""
    return bool(states) and all(state == "idle" for state, _, _ in states)


def test_sigstop_past_lease_expiry(scenario):
    stream = scenario.make_stream(SHARDS)
    w1 = scenario.start_worker("w1")
    scenario.start_worker("w2")
    scenario.start_load()

    def owners():
        return lease_owners(scenario.pg_url, scenario.schema, stream)

    scenario.wait_for(lambda: owners() == {"w1": 1, "w2": 1},
                      "one lease each")
    scenario.wait_progress(50)

    # 1. Between batches.
    states = scenario.wait_for(
        lambda: _idle(s := backend_states(scenario.pg_url,
                                          w1.proxy.upstream_ports())) and s,
        "w1 between batches")
    w1.signal(signal.SIGSTOP)
    threading.Event().wait(PAUSE_S)
    between = owners()
    w1.signal(signal.SIGCONT)
    scenario.wait_for(lambda: "lost shard" in w1.log(),
                      "w1 noticing its lease moved")
    scenario.wait_for(lambda: owners().get("w1"),
                      "w1 balanced back to one lease")
    scenario.wait_progress(50)

    # 2. Inside a batch: stopped while its COPY sleeps, so its transaction
    # stays open with the lease row locked. The triggers go in only now:
    # slow batches back to back also delay the owner's own renewals.
    slow_commit.install(scenario.pg_url, scenario.schema, LOAD_SLEEP_S,
                        COMMIT_SLEEP_S)
    scenario.wait_for(
        lambda: slow_commit.window_of(backend_states(
            scenario.pg_url, w1.proxy.upstream_ports())) == slow_commit.LOAD,
        "w1 inside a batch")
    w1.signal(signal.SIGSTOP)
    threading.Event().wait(PAUSE_S)
    inside = owners()
    w1.signal(signal.SIGCONT)
    scenario.wait_progress(50)

    scenario.notes["live leases at end of pause between batches"] = between
    scenario.notes["inside a batch"] = inside
    scenario.finish()
    assert between == {"w2": 2}, states
