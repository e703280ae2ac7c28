"""Deciding one cycle's moves from a snapshot of the lease table. No I/O.

Rules, in the order a cycle applies them:

1. A shard is eligible when its selector matches, it has not ended, and each
   parent has ended or has no lease row (it left the stream). Children thus
   wait for their parents, and a merged child for both of them.
2. Fair share is ceil(eligible leases / live workers with this selector).
3. A worker below its fair share takes free or expired eligible leases, up
   to the fair share.
4. Only when there is nothing to take does it steal, and only from the most
   loaded live worker of the same selector that holds at least two more
   leases than it does. Moving one lease between two workers whose counts
   differ by two or more always narrows the spread, so the fleet settles and
   never swaps a lease back and forth; it stops when no two workers differ
   by more than one.
"""

import math
import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from worker.kinesis.selector import ShardSelector
from worker.leases.model import Lease


@dataclass(slots=True)
class Plan:
    take: list[Lease] = field(default_factory=list)
    steal: list[Lease] = field(default_factory=list)
    # This worker's shards whose checkpoint reached SHARD_END: give back.
    release: list[Lease] = field(default_factory=list)
    fair_share: int = 0


def eligible(leases: Iterable[Lease], selector: ShardSelector) -> list[Lease]:
    rows = list(leases)
    by_id = {lease.shard_id: lease for lease in rows}

    def parents_done(lease: Lease) -> bool:
        return all(
            parent not in by_id or by_id[parent].ended
            for parent in lease.parent_shard_ids
        )

    return [
        lease
        for lease in rows
        if not lease.ended
        and selector.matches(lease.shard_id, lease.starting_hash_key,
                             lease.ending_hash_key)
        and parents_done(lease)
    ]


def fair_share(leases: int, workers: int) -> int:
    return math.ceil(leases / max(workers, 1))


def plan_cycle(
    leases: Iterable[Lease],
    selector: ShardSelector,
    me: str,
    held: Mapping[str, int],
    live_workers: Collection[str],
    max_steals: int,
    rng: random.Random | None = None,
) -> Plan:
    """The moves for worker ``me``, which holds ``held`` (shard -> counter)
    and sees ``live_workers`` sharing its selector (itself included or not).
    """
    rng = rng or random.Random()
    rows = list(leases)
    candidates = eligible(rows, selector)
    workers = set(live_workers) | {me}
    plan = Plan(fair_share=fair_share(len(candidates), len(workers)))

    # Ended shards still in this worker's name, whether or not the runtime
    # has already forgotten them.
    plan.release = [lease for lease in rows if lease.ended and lease.owner == me]
    mine = sum(1 for lease in candidates if lease.shard_id in held)
    need = plan.fair_share - mine
    if need <= 0:
        return plan

    # A lease in this worker's name that it does not hold (left by an earlier
    # run of the same worker id, or forgotten by the runtime after a failed
    # consumer) is taken again under a new counter: a retry.
    takeable = [
        lease
        for lease in candidates
        if lease.shard_id not in held and (lease.free or lease.owner == me)
    ]
    if takeable:
        # Shuffled so that workers starting together reach for different
        # shards instead of racing for the same ones.
        rng.shuffle(takeable)
        plan.take = takeable[:need]
        return plan

    plan.steal = _choose_steals(
        candidates, me, mine, workers, min(need, max_steals), rng
    )
    return plan


def _choose_steals(
    candidates: list[Lease],
    me: str,
    mine: int,
    workers: set[str],
    max_steals: int,
    rng: random.Random,
) -> list[Lease]:
    held_by = Counter(
        lease.owner
        for lease in candidates
        if not lease.free and lease.owner in workers and lease.owner != me
    )
    if not held_by or max_steals <= 0:
        return []
    victim, count = max(held_by.items(), key=lambda item: (item[1], item[0]))
    surplus = (count - mine) // 2
    if surplus < 1:
        return []
    theirs = [lease for lease in candidates if lease.owner == victim]
    return rng.sample(theirs, min(surplus, max_steals))
