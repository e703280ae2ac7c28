"""The balancing plan, without a database: eligibility, fair share, takes,
steals, and convergence of a whole simulated fleet."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.kinesis.selector import ALL_SHARDS, HASH_SPACE, parse_selector
from worker.leases.balance import eligible, fair_share, plan_cycle
from worker.leases.model import SHARD_END, Lease


def sid(n: int) -> str:
    return f"shardId-{n:012d}"


def lease(n, owner=None, counter=0, expired=False, parents=(),
          checkpoint=None, start=0) -> Lease:
    return Lease(sid(n), tuple(sid(p) for p in parents), str(start),
                 str(HASH_SPACE - 1), owner, counter, expired, checkpoint)


def ids(leases) -> list[str]:
    return sorted(x.shard_id for x in leases)


# -- eligibility --------------------------------------------------------------


def test_children_wait_for_every_parent_to_end():
    rows = [
        lease(0, checkpoint=SHARD_END),
        lease(1),
        lease(2, parents=(0,)),
        lease(3, parents=(0, 1)),
        lease(4, parents=(9,)),  # parent row gone: eligible
    ]

    assert ids(eligible(rows, ALL_SHARDS)) == [sid(1), sid(2), sid(4)]


def test_selector_filters_by_starting_hash_key():
    rows = [lease(0, start=0), lease(1, start=HASH_SPACE // 2)]

    assert ids(eligible(rows, parse_selector("2/2"))) == [sid(1)]


def test_fair_share_rounds_up_and_survives_no_workers():
    assert fair_share(4, 3) == 2
    assert fair_share(4, 2) == 2
    assert fair_share(0, 2) == 0
    assert fair_share(3, 0) == 3


# -- one worker's plan --------------------------------------------------------


def test_takes_free_and_expired_leases_up_to_the_fair_share():
    rows = [lease(0), lease(1, "dead", 4, expired=True), lease(2), lease(3)]

    plan = plan_cycle(rows, ALL_SHARDS, "A", {}, ["A", "B"], 1,
                      random.Random(1))

    assert plan.fair_share == 2
    assert len(plan.take) == 2
    assert plan.steal == []


def test_retakes_a_lease_left_in_its_own_name_by_an_earlier_run():
    rows = [lease(0, "A", 3)]

    plan = plan_cycle(rows, ALL_SHARDS, "A", {}, ["A"], 1)

    assert ids(plan.take) == [sid(0)]


def test_steals_one_from_the_most_loaded_worker_two_or_more_ahead():
    rows = [lease(i, "B", 1) for i in range(4)] + [lease(4, "C", 1)]

    plan = plan_cycle(rows, ALL_SHARDS, "A", {}, ["A", "B", "C"], 1)

    assert len(plan.steal) == 1
    assert plan.steal[0].owner == "B"


def test_no_steal_when_the_spread_is_one():
    rows = [lease(0, "B", 1), lease(1, "B", 1), lease(2, "A", 1),
            lease(3, "C", 1)]

    plan = plan_cycle(rows, ALL_SHARDS, "A", {sid(2): 1}, ["A", "B", "C"], 1)

    assert plan.take == [] and plan.steal == []


def test_no_steal_from_a_worker_that_is_not_live():
    rows = [lease(i, "gone", 1) for i in range(4)]

    plan = plan_cycle(rows, ALL_SHARDS, "A", {}, ["A"], 1)

    assert plan.take == [] and plan.steal == []


def test_no_steal_while_there_is_something_to_take():
    rows = [lease(i, "B", 1) for i in range(4)] + [lease(4)]

    plan = plan_cycle(rows, ALL_SHARDS, "A", {}, ["A", "B"], 3)

    assert ids(plan.take) == [sid(4)]
    assert plan.steal == []


def test_held_ended_shards_are_released():
    rows = [lease(0, "A", 2, checkpoint=SHARD_END), lease(1, "A", 1)]

    plan = plan_cycle(rows, ALL_SHARDS, "A", {sid(0): 2, sid(1): 1}, ["A"], 1)

    assert ids(plan.release) == [sid(0)]


# -- a whole fleet --------------------------------------------------------------


def run_fleet(owners: list[str | None], workers: list[str], seed: int,
              max_rounds: int) -> tuple[dict[str, str | None], int]:
    """Apply every worker's plan in turn, as the table's guarded UPDATEs
    would, until a full round moves nothing. Returns owners and rounds."""
    rng = random.Random(seed)
    table = {sid(i): (o, 1 if o else 0) for i, o in enumerate(owners)}
    for rounds in range(1, max_rounds + 1):
        moved = False
        for me in workers:
            rows = [Lease(s, (), "0", "1", o, c, o not in workers, None)
                    for s, (o, c) in sorted(table.items())]
            held = {s: c for s, (o, c) in table.items() if o == me}
            plan = plan_cycle(rows, ALL_SHARDS, me, held, workers, 1, rng)
            for chosen in plan.take + plan.steal:
                owner, counter = table[chosen.shard_id]
                if (owner, counter) == (chosen.owner, chosen.lease_counter):
                    table[chosen.shard_id] = (me, counter + 1)
                    moved = True
        if not moved:
            return {s: o for s, (o, _) in table.items()}, rounds
    raise AssertionError(f"fleet still moving after {max_rounds} rounds")


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.data())
def test_any_start_settles_with_every_lease_held_and_spread_at_most_one(
    worker_count, data
):
    workers = [f"w{i}" for i in range(worker_count)]
    owners = data.draw(
        st.lists(st.sampled_from(workers + [None, "dead"]), max_size=24)
    )

    final, _ = run_fleet(owners, workers, data.draw(st.integers()), 200)

    assert None not in final.values() and "dead" not in final.values()
    counts = [list(final.values()).count(w) for w in workers]
    assert max(counts) - min(counts) <= 1
