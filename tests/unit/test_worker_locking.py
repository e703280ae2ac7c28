"""The lease thread and the control loop must never wait on each other: the
lease thread calls back into the worker while it holds the coordinator's
database lock, and the control loop reads lease rows through that lock."""

import threading
import types

from worker.leases.coordinator import LeaseCoordinator
from worker.leases.table import LeaseTable
from worker.runtime.worker import Worker


class RenewalThatLosesShardA(LeaseTable):
    """Renewing shard A waits until released, then finds A stolen."""

    def __init__(self, release: threading.Event):
        self._release = release

    def heartbeat(self, me, selector):
        pass

    def renew(self, shard_id, me, counter):
        if shard_id == "A":
            self._release.wait(5)
            return False
        return True

    def get(self, shard_id):
        return None

    def live_workers(self, selector, *args):
        return []

    def list(self):
        return []

    def prune_workers(self, silent_for_s):
        return []


def test_lease_lost_during_a_cycle_does_not_deadlock_the_control_loop():
    release = threading.Event()
    table = RenewalThatLosesShardA(release)
    coordinator = LeaseCoordinator(lambda: None, "s", "me")
    coordinator._lease_table = lambda: table
    settings = types.SimpleNamespace(max_inflight_bytes=1 << 20,
                                     discovery_interval_s=60)
    worker = Worker(stream="s", kinesis=None, leases=coordinator,
                    sink_factory=None, partition_upkeep=None,
                    decode_policy=None, settings=settings)
    coordinator._on_lost = worker.lease_lost
    coordinator._held = {"A": 1, "B": 2}
    stopped = threading.Event()
    worker._consumers["A"] = types.SimpleNamespace(
        lease=types.SimpleNamespace(lease_counter=1), own_stop=stopped)

    # The lease cycle holds the database lock while renewing A; meanwhile
    # the control loop wants to start a consumer for B (reads its row).
    lease_thread = threading.Thread(target=coordinator.run_once, daemon=True)
    lease_thread.start()
    control = threading.Thread(target=worker._reconcile_consumers,
                               daemon=True)
    threading.Event().wait(0.2)
    control.start()
    threading.Event().wait(0.2)
    release.set()
    lease_thread.join(5)
    control.join(5)

    assert not lease_thread.is_alive()
    assert not control.is_alive()
    assert stopped.is_set()  # A's consumer was told its lease is gone
