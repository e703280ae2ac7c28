"""LeaseCoordinator against real PostgreSQL: several workers in one process,
each with its own connection, balancing one stream's leases.

Cycles are driven by hand (``run_once``) unless a test is about the loop.
Expiry-based tests use a one-second lease and wait with a generous deadline;
no test asserts how long anything took.
"""

import logging
import threading
import time

import psycopg
import pytest

from worker.db.connect import connect
from worker.errors import TransientError
from worker.kinesis.client import ShardInfo
from worker.kinesis.selector import HASH_SPACE, parse_selector
from worker.leases import (
    SHARD_END,
    LeaseCoordinator,
    LeaseSettings,
    LeaseTable,
)

STREAM = "leases-balance"
DEADLINE_S = 30.0
MAX_ROUNDS = 40
SHORT = LeaseSettings(lease_duration_s=1.0)


def shard_id(n: int) -> str:
    return f"shardId-{n:012d}"


def even_shards(count: int, first: int = 0) -> list[ShardInfo]:
    step = HASH_SPACE // count
    return [
        ShardInfo(shard_id(first + i), (), str(i * step),
                  str((i + 1) * step - 1))
        for i in range(count)
    ]


def wait_until(predicate, what: str, tick=None) -> None:
    pause = threading.Event()
    deadline = time.monotonic() + DEADLINE_S
    while True:
        if tick is not None:
            tick()
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        pause.wait(0.05)


class Fleet:
    """Coordinators for one stream, each on its own connections."""

    def __init__(self, pg_url: str, schema: str):
        self.pg_url = pg_url
        self.schema = schema
        self.workers: dict[str, LeaseCoordinator] = {}
        self.opened: dict[str, list[psycopg.Connection]] = {}
        self.acquired: dict[str, list] = {}
        self.lost: dict[str, list] = {}
        self._observer = connect(pg_url, schema, autocommit=True)
        self.table = LeaseTable(self._observer, STREAM)

    def add(self, worker_id: str, selector: str = "all",
            settings: LeaseSettings | None = None,
            **kwargs) -> LeaseCoordinator:
        self.opened[worker_id] = []
        self.acquired[worker_id] = []
        self.lost[worker_id] = []

        def connect_once() -> psycopg.Connection:
            conn = connect(self.pg_url, self.schema, autocommit=True)
            self.opened[worker_id].append(conn)
            return conn

        kwargs.setdefault("on_acquired", self.acquired[worker_id].append)
        kwargs.setdefault(
            "on_lost", lambda *lost: self.lost[worker_id].append(lost)
        )
        coordinator = LeaseCoordinator(
            connect_once, STREAM, worker_id, parse_selector(selector),
            settings or LeaseSettings(), **kwargs,
        )
        self.workers[worker_id] = coordinator
        return coordinator

    def counts(self, *ids: str) -> dict[str, int]:
        return {w: len(self.workers[w].held()) for w in ids or self.workers}

    def cycle(self, *ids: str) -> None:
        for worker_id in ids or list(self.workers):
            self.workers[worker_id].run_once()

    def settle(self, *ids: str) -> dict[str, int]:
        """Cycle until a full round changes nothing in the table or in any
        worker's view; return the counts."""
        previous = None
        for _ in range(MAX_ROUNDS):
            self.cycle(*ids)
            state = (
                [(l.shard_id, l.owner, l.lease_counter)
                 for l in self.table.list()],
                {w: self.workers[w].held() for w in ids or self.workers},
            )
            if state == previous:
                return self.counts(*ids)
            previous = state
        raise AssertionError(f"no settled state in {MAX_ROUNDS} rounds")

    def close(self) -> None:
        for coordinator in self.workers.values():
            coordinator.close()
        for conns in self.opened.values():
            for conn in conns:
                conn.close()
        self._observer.close()


@pytest.fixture
def fleet(pg_url, migrated_schema):
    f = Fleet(pg_url, migrated_schema)
    yield f
    f.close()


@pytest.fixture
def table(db):
    return LeaseTable(db, STREAM)


def owners(table: LeaseTable) -> dict[str, str | None]:
    return {lease.shard_id: lease.owner for lease in table.list()}


def end_shard(db, shard: str) -> None:
    """What the sink's last commit on a closed shard does."""
    db.execute(
        f"UPDATE shard_leases SET checkpoint_sequence = '{SHARD_END}' "
        "WHERE stream_name = %s AND shard_id = %s",
        (STREAM, shard),
    )


def assert_views_match_table(fleet: Fleet, table: LeaseTable) -> None:
    in_table = {s: o for s, o in owners(table).items() if o is not None}
    in_views = {
        shard: worker
        for worker, c in fleet.workers.items()
        for shard in c.held()
    }
    assert in_views == in_table


# -- balancing ----------------------------------------------------------------


def test_two_workers_on_four_shards_settle_at_two_each(fleet, table):
    table.ensure_rows(even_shards(4))
    fleet.add("A")
    fleet.add("B")

    counts = fleet.settle()

    assert counts == {"A": 2, "B": 2}
    assert_views_match_table(fleet, table)


def test_a_third_worker_joins_and_the_fleet_rebalances(fleet, table):
    table.ensure_rows(even_shards(4))
    fleet.add("A")
    fleet.add("B")
    fleet.settle()

    fleet.add("C")
    counts = fleet.settle()

    assert sorted(counts.values()) == [1, 1, 2]
    assert counts["C"] == 1
    assert None not in owners(table).values()
    assert_views_match_table(fleet, table)


def test_a_worker_that_stops_renewing_loses_its_shards_after_expiry(
    fleet, table
):
    table.ensure_rows(even_shards(4))
    fleet.add("A", settings=SHORT)
    fleet.add("B", settings=SHORT)
    fleet.settle()
    held_by_a = fleet.workers["A"].held()
    lost_while_settling = len(fleet.lost["A"])

    wait_until(lambda: fleet.counts("B") == {"B": 4},
               "B to take A's expired shards", tick=lambda: fleet.cycle("B"))
    after_expiry = owners(table)
    taken = fleet.workers["B"].held()
    fleet.cycle("A")  # A wakes up: its renewals find the leases gone

    assert set(after_expiry.values()) == {"B"}
    for shard, counter in held_by_a.items():
        assert taken[shard] == counter + 1
    lost = fleet.lost["A"][lost_while_settling:]
    assert sorted(lost) == sorted(held_by_a.items())
    # Live again, A may steal back at most one lease in that cycle.
    assert len(fleet.workers["A"].held()) <= 1


def test_fair_share_counts_only_workers_with_the_same_selector(fleet, table):
    # Three shards in the lower half of the hash space (group 1 of 2).
    quarter = HASH_SPACE // 8
    table.ensure_rows(
        ShardInfo(shard_id(i), (), str(i * quarter), str((i + 1) * quarter - 1))
        for i in range(3)
    )
    for worker_id, selector in [("A", "1/2"), ("B", "1/2"),
                                ("C", "2/2"), ("D", "2/2")]:
        fleet.add(worker_id, selector)

    counts = fleet.settle()

    assert sorted([counts["A"], counts["B"]]) == [1, 2]
    assert counts["C"] == counts["D"] == 0
    assert None not in owners(table).values()


def test_close_releases_leases_for_another_worker_at_once(fleet, table, db):
    table.ensure_rows(even_shards(3))
    fleet.add("A")
    fleet.add("B")
    fleet.cycle("A")

    released = fleet.workers["A"].close()
    fleet.cycle("B")

    assert sorted(released) == [s.shard_id for s in even_shards(3)]
    # The default ten-second lease has not expired: B took released leases.
    assert fleet.counts("B") == {"B": 3}
    workers = db.execute("SELECT worker_id FROM ingest_workers").fetchall()
    assert workers == [("B",)]


def test_drain_keeps_renewing_but_takes_nothing_new(fleet, table):
    table.ensure_rows(even_shards(2))
    a = fleet.add("A")
    a.run_once()
    table.ensure_rows(even_shards(1, first=5))

    a.drain()
    a.run_once()

    assert sorted(a.held()) == [shard_id(0), shard_id(1)]
    assert owners(table)[shard_id(5)] is None


# -- lineage ------------------------------------------------------------------


def test_split_children_wait_for_their_parent_to_end(fleet, table, db):
    half = HASH_SPACE // 2
    table.ensure_rows([
        ShardInfo(shard_id(0), (), "0", str(HASH_SPACE - 1)),
        ShardInfo(shard_id(1), (shard_id(0),), "0", str(half - 1)),
        ShardInfo(shard_id(2), (shard_id(0),), str(half), str(HASH_SPACE - 1)),
    ])
    fleet.add("A")
    fleet.add("B")

    fleet.settle()
    before = owners(table)
    end_shard(db, shard_id(0))
    counts = fleet.settle()
    after = owners(table)

    assert before[shard_id(0)] is not None
    assert before[shard_id(1)] is None and before[shard_id(2)] is None
    assert counts == {"A": 1, "B": 1}
    assert after[shard_id(0)] is None  # the ended parent was given back
    assert {after[shard_id(1)], after[shard_id(2)]} == {"A", "B"}


def test_merged_child_is_read_by_exactly_one_worker_after_both_parents(
    fleet, table, db
):
    half = HASH_SPACE // 2
    table.ensure_rows([
        ShardInfo(shard_id(0), (), "0", str(half - 1)),
        ShardInfo(shard_id(1), (), str(half), str(HASH_SPACE - 1)),
        ShardInfo(shard_id(2), (shard_id(0), shard_id(1)), "0",
                  str(HASH_SPACE - 1)),
    ])
    fleet.add("A")
    fleet.add("B")
    fleet.settle()

    end_shard(db, shard_id(0))
    fleet.settle()
    one_parent_ended = owners(table)[shard_id(2)]
    end_shard(db, shard_id(1))
    fleet.settle()

    assert one_parent_ended is None
    readers = [w for w, c in fleet.workers.items() if shard_id(2) in c.held()]
    assert len(readers) == 1
    assert owners(table)[shard_id(2)] == readers[0]
    assert [lease.shard_id for lease in fleet.acquired[readers[0]]].count(
        shard_id(2)
    ) == 1


def test_child_whose_parent_has_no_row_is_eligible(fleet, table):
    # The parent aged out of the stream and its row was pruned.
    table.ensure_rows([ShardInfo(shard_id(9), (shard_id(3),), "0", "10")])
    fleet.add("A")

    fleet.cycle("A")

    assert fleet.workers["A"].held() == {shard_id(9): 1}


def test_ended_shard_is_given_back_by_its_holder(fleet, table, db):
    table.ensure_rows(even_shards(1))
    fleet.add("A")
    fleet.cycle("A")

    end_shard(db, shard_id(0))
    fleet.cycle("A")

    assert fleet.workers["A"].held() == {}
    (lease,) = table.list()
    assert (lease.owner, lease.lease_counter) == (None, 2)


# -- selectors ----------------------------------------------------------------


def test_group_selectors_partition_shards_by_hash(fleet, table):
    table.ensure_rows(even_shards(4))
    fleet.add("low", "1/2")
    fleet.add("high", "2/2")

    fleet.settle()

    assert sorted(fleet.workers["low"].held()) == [shard_id(0), shard_id(1)]
    assert sorted(fleet.workers["high"].held()) == [shard_id(2), shard_id(3)]


def test_group_selectors_follow_a_split_across_the_group_boundary(
    fleet, table, db
):
    half = HASH_SPACE // 2
    table.ensure_rows([ShardInfo(shard_id(0), (), "0", str(HASH_SPACE - 1))])
    fleet.add("low", "1/2")
    fleet.add("high", "2/2")
    fleet.settle()
    parent_reader = owners(table)[shard_id(0)]

    # The stream splits the one shard in two; discovery adds the children.
    table.ensure_rows([
        ShardInfo(shard_id(1), (shard_id(0),), "0", str(half - 1)),
        ShardInfo(shard_id(2), (shard_id(0),), str(half), str(HASH_SPACE - 1)),
    ])
    fleet.settle()
    while_parent_open = owners(table)
    end_shard(db, shard_id(0))
    fleet.settle()

    assert parent_reader == "low"
    assert while_parent_open[shard_id(1)] is None
    assert while_parent_open[shard_id(2)] is None
    assert fleet.workers["low"].held().keys() == {shard_id(1)}
    assert fleet.workers["high"].held().keys() == {shard_id(2)}


def test_id_list_selector_takes_only_the_listed_shards(fleet, table):
    table.ensure_rows(even_shards(3))
    fleet.add("pinned", f"{shard_id(2)},{shard_id(0)}")

    fleet.settle()

    assert sorted(fleet.workers["pinned"].held()) == [shard_id(0), shard_id(2)]
    assert owners(table)[shard_id(1)] is None


# -- lost leases, reset, failures ---------------------------------------------


def test_reset_tells_the_holder_and_the_shard_restarts_at_the_new_position(
    fleet, table
):
    table.ensure_rows(even_shards(1))
    fleet.add("A")
    fleet.cycle("A")

    table.reset(shard_id(0), after_sequence="777")
    fleet.cycle("A")  # renewal finds the lease gone
    fleet.cycle("A")  # and takes it again, under a new counter

    assert fleet.lost["A"] == [(shard_id(0), 1)]
    first, again = fleet.acquired["A"]
    assert first.lease_counter == 1 and first.checkpoint_sequence is None
    assert again.lease_counter == 3 and again.checkpoint_sequence == "777"
    assert fleet.workers["A"].held() == {shard_id(0): 3}


def test_failed_start_callback_gives_the_lease_back(fleet, table):
    table.ensure_rows(even_shards(1))

    def refuse(lease):
        raise RuntimeError("reader could not start")

    fleet.add("A", on_acquired=refuse)
    fleet.cycle("A")

    assert fleet.workers["A"].held() == {}
    (lease,) = table.list()
    assert (lease.owner, lease.lease_counter) == (None, 2)


def test_cycle_after_a_dropped_connection_reconnects_and_keeps_leases(
    fleet, table, db
):
    table.ensure_rows(even_shards(2))
    a = fleet.add("A")
    a.run_once()
    held = a.held()
    db.execute("SELECT pg_terminate_backend(%s)",
               (fleet.opened["A"][-1].info.backend_pid,))

    with pytest.raises(TransientError):
        a.run_once()
    a.run_once()

    assert len(fleet.opened["A"]) == 2
    assert a.held() == held
    assert set(owners(table).values()) == {"A"}


def test_lease_loop_logs_a_failed_cycle_and_goes_on(
    fleet, table, db, caplog
):
    table.ensure_rows(even_shards(2))
    a = fleet.add("A", settings=SHORT)
    caplog.set_level(logging.WARNING, logger="worker.leases.coordinator")
    a.start()
    wait_until(lambda: len(a.held()) == 2, "A to take both shards")

    db.execute("SELECT pg_terminate_backend(%s)",
               (fleet.opened["A"][0].info.backend_pid,))
    wait_until(lambda: len(fleet.opened["A"]) >= 2, "A to reconnect")
    wait_until(
        lambda: all(lease.owner == "A" and not lease.expired
                    for lease in table.list()),
        "A to renew on its new connection",
    )
    a.close()

    assert a.failed_cycles >= 1
    assert any("lease cycle failed" in r.getMessage() for r in caplog.records)
    assert set(owners(table).values()) == {None}


def test_two_lease_loops_share_shards_and_hand_over_on_close(
    fleet, table, db
):
    table.ensure_rows(even_shards(4))
    a = fleet.add("A", settings=SHORT)
    b = fleet.add("B", settings=SHORT)
    a.start()
    b.start()

    wait_until(lambda: fleet.counts() == {"A": 2, "B": 2}, "a 2/2 split")
    a.close()
    wait_until(lambda: fleet.counts("B") == {"B": 4}, "B to take A's shards")
    b.close()

    assert set(owners(table).values()) == {None}
    assert db.execute("SELECT count(*) FROM ingest_workers").fetchone() == (0,)


# -- what the runtime calls ---------------------------------------------------


def test_sync_shards_creates_rows_and_prunes_ended_shards_that_left(
    fleet, table, db
):
    a = fleet.add("A")
    a.sync_shards(even_shards(3))
    end_shard(db, shard_id(0))

    created = a.sync_shards(even_shards(2, first=1) + even_shards(1, first=7))

    assert created == [shard_id(7)]
    assert sorted(owners(table)) == [shard_id(1), shard_id(2), shard_id(7)]


def test_lease_row_gives_the_runtime_its_start_position(fleet, table, db):
    table.ensure_rows([ShardInfo(shard_id(4), (shard_id(1),), "0", "9")])
    a = fleet.add("A")
    a.run_once()
    db.execute("UPDATE shard_leases SET checkpoint_sequence = '31', "
               "checkpoint_sub_sequence = 2")

    row = a.lease_row(shard_id(4))

    assert row["lease_counter"] == a.held()[shard_id(4)] == 1
    assert (row["checkpoint_sequence"], row["checkpoint_sub_sequence"]) == (
        "31", 2)
    assert row["parent_shard_ids"] == (shard_id(1),)
    assert row["reset_to_timestamp"] is None
    assert a.lease_row(shard_id(5)) is None


def test_a_forgotten_lease_is_retaken_under_a_new_counter(fleet, table):
    table.ensure_rows(even_shards(1))
    a = fleet.add("A")
    a.run_once()

    a.forget(shard_id(0))  # e.g. its consumer failed
    a.run_once()

    assert a.held() == {shard_id(0): 2}


def test_an_ended_shard_the_runtime_forgot_is_still_given_back(
    fleet, table, db
):
    table.ensure_rows(even_shards(1))
    a = fleet.add("A")
    a.run_once()

    end_shard(db, shard_id(0))
    a.forget(shard_id(0))  # the consumer saw SHARD_END
    a.run_once()

    (lease,) = table.list()
    assert (lease.owner, lease.lease_counter) == (None, 2)
    assert a.held() == {}


def test_release_all_skips_a_row_still_committing_and_frees_the_rest(
    pg_url, migrated_schema, fleet, table, db
):
    table.ensure_rows(even_shards(3))
    a = fleet.add("A", settings=LeaseSettings(lease_duration_s=0.6))
    a.run_once()
    holder = connect(pg_url, migrated_schema)
    holder.execute("SELECT 1 FROM shard_leases WHERE shard_id = %s "
                   "FOR UPDATE", (shard_id(1),))

    try:
        released = a.release_all()
    finally:
        holder.rollback()
        holder.close()

    assert sorted(released) == [shard_id(0), shard_id(2)]
    assert owners(table) == {shard_id(0): None, shard_id(1): "A",
                             shard_id(2): None}
    assert db.execute("SELECT count(*) FROM ingest_workers").fetchone() == (0,)


def test_unreachable_database_is_a_transient_cycle_failure(migrated_schema):
    a = LeaseCoordinator(
        lambda: connect("postgresql://postgres@127.0.0.1:1/test",
                        migrated_schema, autocommit=True),
        STREAM, "A",
    )

    with pytest.raises(TransientError, match="cannot connect"):
        a.run_once()
    assert a.close() == {}


def test_settings_take_an_explicit_renew_interval():
    settings = LeaseSettings(lease_duration_s=10.0, renew_interval_s=2.0)

    assert settings.cycle_interval_s == 2.0
    assert LeaseSettings(lease_duration_s=9.0).cycle_interval_s == 3.0
    with pytest.raises(ValueError):
        LeaseSettings(lease_duration_s=1.0, renew_interval_s=1.0)
