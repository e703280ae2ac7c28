"""SIGKILL of workers at random points under load, a replacement started
after each kill. Some kills are aimed at the two windows between a batch's
load and its commit (see slow_commit): during the load, when the server
rolls the batch back, and during COMMIT, when the server completes it
without the worker ever hearing so."""

import collections
import random
import signal
import threading

from tests.faults import slow_commit
from tests.faults.workers import backend_states

# Seeded, so a failure can be replayed with the same choices (the timing
# of the machine still varies from run to run).
SEED = 20251201
SHARDS = 4
WORKERS = 3

# Long enough that a kill aimed at a window lands in it after a 50 ms poll,
# short enough that batches still keep up with the load.
LOAD_SLEEP_S = 0.3
COMMIT_SLEEP_S = 0.3

RANDOM_POINT = "random point"
# Each point twice, in a seeded order.
KILL_POINTS = [RANDOM_POINT, slow_commit.LOAD, slow_commit.COMMIT] * 2
RANDOM_DELAY_S = (0.2, 2.0)


def test_sigkill_at_random_points(scenario):
    rng = random.Random(SEED)
    slow_commit.install(scenario.pg_url, scenario.schema, LOAD_SLEEP_S,
                        COMMIT_SLEEP_S)
    scenario.make_stream(SHARDS)
    live = [scenario.start_worker(f"w{i}") for i in range(1, WORKERS + 1)]
    scenario.start_load()
    scenario.wait_progress(50)

    points = list(KILL_POINTS)
    rng.shuffle(points)
    landed = collections.Counter()
    for number, point in enumerate(points, start=WORKERS + 1):
        victim = rng.choice(live)
        ports = _kill_when(scenario, victim, point, rng)
        # The server keeps sleeping after the client died: what it is doing
        # now is where the kill landed.
        window = slow_commit.window_of(backend_states(scenario.pg_url, ports))
        victim.process.wait()
        landed[window or "outside a batch"] += 1

        live.remove(victim)
        live.append(scenario.start_worker(f"w{number}"))
        scenario.wait_progress(30)

    scenario.notes["kills landed"] = dict(landed)
    scenario.finish()
    assert landed[slow_commit.LOAD] >= 1, landed
    assert landed[slow_commit.COMMIT] >= 1, landed


def _kill_when(scenario, victim, point: str, rng) -> list[int]:
    """SIGKILL ``victim`` at ``point``; returns its server-side ports as
    they were just before."""
    if point == RANDOM_POINT:
        threading.Event().wait(rng.uniform(*RANDOM_DELAY_S))
        ports = victim.proxy.upstream_ports()
    else:
        def in_window():
            ports = victim.proxy.upstream_ports()
            states = backend_states(scenario.pg_url, ports)
            return slow_commit.window_of(states) == point and ports

        ports = scenario.wait_for(in_window, f"{victim.name} in {point}")
    victim.signal(signal.SIGKILL)
    return ports
