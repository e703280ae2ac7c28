"""SIGTERM rolling restart: every worker, one after another, is stopped
under load and replaced, as a deployment does. Each must exit 0 having
given its leases back."""

from tests.e2e.worker_harness import lease_owners

WORKERS = 3
SHARDS = 4


def test_sigterm_rolling_restart(scenario):
    stream = scenario.make_stream(SHARDS)
    workers = [scenario.start_worker(f"w{i}") for i in range(1, WORKERS + 1)]
    scenario.start_load()
    scenario.wait_progress(100)

    exits = {}
    for number, old in enumerate(workers, start=WORKERS + 1):
        exits[old.name] = old.terminate()
        new = scenario.start_worker(f"w{number}")
        scenario.wait_for(
            lambda: lease_owners(scenario.pg_url, scenario.schema,
                                 stream).get(new.name),
            f"{new.name} holding a lease")
        scenario.wait_progress(50)

    scenario.notes["exit codes"] = exits
    scenario.finish()
    assert exits == {w.name: 0 for w in workers}
    for worker in workers:
        # Handed over, not left to expire.
        assert "could not release" not in worker.log()
        assert "left to expire" not in worker.log()
