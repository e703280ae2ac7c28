"""LeaseTable against real PostgreSQL: rows, guarded ownership changes, the
row lock of a commit in progress, workers, and the operator's reset.

Expiry is produced by moving ``lease_expires_at`` into the past with SQL (the
database clock is the only clock leases use), so nothing here waits for it.
"""

import random
import threading
import time
from datetime import datetime, timezone

import pytest

from worker.db.connect import connect
from worker.errors import ConfigError
from worker.kinesis.client import ShardInfo
from worker.leases import SHARD_END, LeaseBusy, LeaseTable
from worker.kinesis.selector import HASH_SPACE

STREAM = "leases-table"
OTHER_STREAM = "leases-table-other"

# Generous: a waiting thread on a busy two-core machine, not a timing claim.
DEADLINE_S = 30.0


def shard_id(n: int) -> str:
    return f"shardId-{n:012d}"


def even_shards(count: int) -> list[ShardInfo]:
    step = HASH_SPACE // count
    return [
        ShardInfo(shard_id(i), (), str(i * step), str((i + 1) * step - 1))
        for i in range(count)
    ]


def row(db, shard: str, stream: str = STREAM) -> dict:
    cur = db.execute(
        "SELECT owner, lease_counter, checkpoint_sequence, "
        "reset_to_timestamp, lease_expires_at, "
        "lease_expires_at > now() AS live "
        "FROM shard_leases WHERE stream_name = %s AND shard_id = %s",
        (stream, shard),
    )
    names = [c.name for c in cur.description]
    return dict(zip(names, cur.fetchone()))


def expire(db, shard: str) -> None:
    db.execute(
        "UPDATE shard_leases SET lease_expires_at = now() - interval '1 s' "
        "WHERE stream_name = %s AND shard_id = %s",
        (STREAM, shard),
    )


def wait_until(predicate, what: str) -> None:
    pause = threading.Event()
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        pause.wait(0.05)


@pytest.fixture
def table(db):
    return LeaseTable(db, STREAM, lease_duration_s=10.0)


# -- rows ---------------------------------------------------------------------


def test_ensure_rows_creates_missing_rows_only(table, db):
    first = table.ensure_rows(even_shards(2))
    table.take(shard_id(0), "A", None, 0)
    db.execute(
        "UPDATE shard_leases SET checkpoint_sequence = '42' "
        "WHERE shard_id = %s", (shard_id(0),),
    )

    again = table.ensure_rows(even_shards(3))

    assert first == [shard_id(0), shard_id(1)]
    assert again == [shard_id(2)]
    kept = row(db, shard_id(0))
    assert (kept["owner"], kept["lease_counter"]) == ("A", 1)
    assert kept["checkpoint_sequence"] == "42"


def test_ensure_rows_stores_lineage_and_hash_range(table):
    child = ShardInfo(shard_id(2), (shard_id(0), shard_id(1)), "7", "99")

    table.ensure_rows([child])

    (lease,) = table.list()
    assert lease.parent_shard_ids == (shard_id(0), shard_id(1))
    assert (lease.starting_hash_key, lease.ending_hash_key) == ("7", "99")
    assert lease.owner is None and lease.lease_counter == 0


def test_ensure_rows_rejects_a_hash_key_that_is_not_decimal(table):
    bad = ShardInfo(shard_id(1), (), "0x10", "99")

    with pytest.raises(ValueError, match="decimal"):
        table.ensure_rows([even_shards(1)[0], bad])

    assert table.list() == []


def test_concurrent_ensure_rows_from_many_workers_do_not_fail(
    pg_url, migrated_schema, db
):
    shards = even_shards(16)
    workers = 6
    start = threading.Barrier(workers)
    created: list[list[str]] = []
    errors: list[BaseException] = []

    def one_worker(seed: int) -> None:
        mine = shards[:]
        random.Random(seed).shuffle(mine)
        try:
            with connect(pg_url, migrated_schema, autocommit=True) as conn:
                start.wait(DEADLINE_S)
                created.append(LeaseTable(conn, STREAM).ensure_rows(mine))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one_worker, args=(i,))
               for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)

    assert errors == []
    assert sorted(s for batch in created for s in batch) == [
        s.shard_id for s in shards
    ]
    count = db.execute("SELECT count(*) FROM shard_leases").fetchone()[0]
    assert count == 16


def test_list_sees_only_its_own_stream(table, db):
    table.ensure_rows(even_shards(2))
    LeaseTable(db, OTHER_STREAM).ensure_rows(even_shards(3))

    assert [lease.shard_id for lease in table.list()] == [
        shard_id(0), shard_id(1)
    ]


def test_prune_gone_deletes_rows_gone_from_the_stream(table, db):
    table.ensure_rows(even_shards(4))
    db.execute(
        f"UPDATE shard_leases SET checkpoint_sequence = '{SHARD_END}' "
        "WHERE shard_id IN (%s, %s)", (shard_id(0), shard_id(1)),
    )

    # Shard 0 ended and aged out; shard 3 aged out before it was read to
    # the end (its records expired): both rows go, so children may start.
    pruned = table.prune_gone([shard_id(1), shard_id(2)])
    nothing = table.prune_gone([])

    assert pruned == [(shard_id(0), True), (shard_id(3), False)]
    assert nothing == []
    assert [lease.shard_id for lease in table.list()] == [
        shard_id(1), shard_id(2)
    ]


# -- ownership ----------------------------------------------------------------


def test_take_free_lease_moves_counter_and_sets_expiry(table, db):
    table.ensure_rows(even_shards(1))

    lease = table.take(shard_id(0), "A", None, 0)

    assert (lease.owner, lease.lease_counter, lease.expired) == ("A", 1, False)
    stored = row(db, shard_id(0))
    assert (stored["owner"], stored["lease_counter"]) == ("A", 1)
    assert stored["live"]


def test_take_with_a_stale_view_changes_nothing(table, db):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)

    assert table.take(shard_id(0), "B", None, 0) is None

    assert row(db, shard_id(0))["owner"] == "A"


def test_take_of_a_live_lease_is_refused(table, db):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)

    assert table.take(shard_id(0), "B", "A", 1) is None

    assert row(db, shard_id(0))["owner"] == "A"


def test_take_of_an_expired_lease_succeeds(table, db):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)
    expire(db, shard_id(0))

    lease = table.take(shard_id(0), "B", "A", 1)

    assert (lease.owner, lease.lease_counter) == ("B", 2)


def test_take_of_an_ended_shard_is_refused(table, db):
    table.ensure_rows(even_shards(1))
    db.execute(f"UPDATE shard_leases SET checkpoint_sequence = '{SHARD_END}'")

    assert table.take(shard_id(0), "A", None, 0) is None


def test_renew_moves_only_the_expiry(table, db):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)
    expire(db, shard_id(0))

    renewed = table.renew(shard_id(0), "A", 1)

    stored = row(db, shard_id(0))
    assert renewed
    assert stored["live"]
    assert (stored["owner"], stored["lease_counter"]) == ("A", 1)


def test_renew_under_another_counter_reports_the_lease_gone(table, db):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)
    expire(db, shard_id(0))
    table.take(shard_id(0), "B", "A", 1)

    assert not table.renew(shard_id(0), "A", 1)

    assert row(db, shard_id(0))["owner"] == "B"


def test_pin_start_fixes_a_never_read_shard_once_for_its_holder(table, db):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)
    before = db.execute("SELECT now()").fetchone()[0]

    pinned = table.pin_start(shard_id(0), "A", 1, margin_s=5.0)
    again = table.pin_start(shard_id(0), "A", 1, margin_s=5.0)

    stored = row(db, shard_id(0))
    assert stored["reset_to_timestamp"] == pinned
    assert (before - pinned).total_seconds() == pytest.approx(5.0, abs=1.0)
    assert again is None  # a pinned start is never moved later


def test_pin_start_leaves_a_checkpointed_or_lost_shard_alone(table, db):
    table.ensure_rows(even_shards(2))
    table.take(shard_id(0), "A", None, 0)
    db.execute(
        "UPDATE shard_leases SET checkpoint_sequence = '42' "
        "WHERE stream_name = %s AND shard_id = %s", (STREAM, shard_id(0)))
    table.take(shard_id(1), "A", None, 0)

    assert table.pin_start(shard_id(0), "A", 1, margin_s=5.0) is None
    assert table.pin_start(shard_id(1), "B", 1, margin_s=5.0) is None
    assert table.pin_start(shard_id(1), "A", 7, margin_s=5.0) is None
    assert row(db, shard_id(0))["reset_to_timestamp"] is None
    assert row(db, shard_id(1))["reset_to_timestamp"] is None


def test_steal_moves_a_live_lease_and_its_counter(table, db):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)

    lease = table.steal(shard_id(0), "B", "A", 1)

    assert (lease.owner, lease.lease_counter) == ("B", 2)
    assert not table.renew(shard_id(0), "A", 1)


def test_release_makes_the_lease_takeable_at_once(table, db):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)

    released = table.release(shard_id(0), "A", 1)
    lease = table.take(shard_id(0), "B", None, 2)

    assert released
    assert (lease.owner, lease.lease_counter) == ("B", 3)


def test_release_all_gives_back_only_this_workers_leases(table, db):
    table.ensure_rows(even_shards(3))
    table.take(shard_id(0), "A", None, 0)
    table.take(shard_id(1), "A", None, 0)
    table.take(shard_id(2), "B", None, 0)

    released = table.release_all("A")

    assert released == {shard_id(0): 2, shard_id(1): 2}
    assert row(db, shard_id(0))["owner"] is None
    assert row(db, shard_id(2))["owner"] == "B"


# -- the row lock of a commit in progress -----------------------------------


def _hold_row_for_update(pg_url, schema, shard: str):
    """What the sink's fenced commit does: lock the lease row, proving owner
    and counter, and move the checkpoint; the caller commits later."""
    holder = connect(pg_url, schema)
    holder.execute(
        "SELECT 1 FROM shard_leases WHERE stream_name = %s AND shard_id = %s "
        "AND owner = 'A' AND lease_counter = 1 FOR UPDATE",
        (STREAM, shard),
    )
    holder.execute(
        "UPDATE shard_leases SET checkpoint_sequence = '1000' "
        "WHERE stream_name = %s AND shard_id = %s",
        (STREAM, shard),
    )
    return holder


def _waits_on_lock(db, pid: int) -> bool:
    kind = db.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return kind is not None and kind[0] == "Lock"


def test_steal_lands_only_after_the_owners_commit(
    pg_url, migrated_schema, table, db
):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)
    holder = _hold_row_for_update(pg_url, migrated_schema, shard_id(0))
    thief_conn = connect(pg_url, migrated_schema, autocommit=True)
    thief = LeaseTable(thief_conn, STREAM)
    result = {}
    stealing = threading.Thread(
        target=lambda: result.update(
            lease=thief.steal(shard_id(0), "B", "A", 1)
        )
    )

    try:
        stealing.start()
        wait_until(
            lambda: _waits_on_lock(db, thief_conn.info.backend_pid),
            "the steal to wait on the row lock",
        )
        during = row(db, shard_id(0))
        holder.commit()
        stealing.join(DEADLINE_S)
    finally:
        holder.close()
        thief_conn.close()

    assert (during["owner"], during["lease_counter"]) == ("A", 1)
    assert result["lease"].owner == "B"
    assert result["lease"].lease_counter == 2
    # The owner's commit is kept: its checkpoint is what the thief resumes at.
    assert result["lease"].checkpoint_sequence == "1000"


def test_steal_with_a_lock_wait_gives_up_without_changing_anything(
    pg_url, migrated_schema, table, db
):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)
    holder = _hold_row_for_update(pg_url, migrated_schema, shard_id(0))
    thief_conn = connect(pg_url, migrated_schema, autocommit=True)
    thief_conn.execute("SET lock_timeout = '50ms'")
    thief = LeaseTable(thief_conn, STREAM)

    try:
        with pytest.raises(LeaseBusy):
            thief.steal(shard_id(0), "B", "A", 1)
        holder.commit()
        after_commit = thief.steal(shard_id(0), "B", "A", 1)
    finally:
        holder.close()
        thief_conn.close()

    assert after_commit.owner == "B"
    assert row(db, shard_id(0))["lease_counter"] == 2


def test_a_commit_that_rolls_back_leaves_the_steal_to_land_on_the_old_row(
    pg_url, migrated_schema, table, db
):
    table.ensure_rows(even_shards(1))
    table.take(shard_id(0), "A", None, 0)
    holder = _hold_row_for_update(pg_url, migrated_schema, shard_id(0))
    thief_conn = connect(pg_url, migrated_schema, autocommit=True)
    result = {}
    stealing = threading.Thread(
        target=lambda: result.update(
            lease=LeaseTable(thief_conn, STREAM).steal(shard_id(0), "B", "A", 1)
        )
    )

    try:
        stealing.start()
        wait_until(
            lambda: _waits_on_lock(db, thief_conn.info.backend_pid),
            "the steal to wait on the row lock",
        )
        holder.rollback()
        stealing.join(DEADLINE_S)
    finally:
        holder.close()
        thief_conn.close()

    assert result["lease"].owner == "B"
    assert result["lease"].checkpoint_sequence is None


# -- workers ------------------------------------------------------------------


def test_live_workers_count_only_the_same_stream_and_selector(table, db):
    table.heartbeat("A", "1/2")
    table.heartbeat("B", "1/2")
    table.heartbeat("C", "2/2")
    LeaseTable(db, OTHER_STREAM).heartbeat("D", "1/2")
    table.heartbeat("E", "1/2")
    db.execute(
        "UPDATE ingest_workers SET heartbeat_at = now() - interval '1 hour' "
        "WHERE worker_id = 'E'"
    )

    assert table.live_workers("1/2") == ["A", "B"]
    assert table.live_workers("2/2") == ["C"]


def test_heartbeat_upserts_and_keeps_the_start_time(table, db):
    table.heartbeat("A", "all")
    db.execute(
        "UPDATE ingest_workers SET started_at = now() - interval '1 day', "
        "heartbeat_at = now() - interval '1 day'"
    )

    table.heartbeat("A", "all")

    started, beat = db.execute(
        "SELECT started_at < now() - interval '1 hour', "
        "heartbeat_at > now() - interval '1 minute' FROM ingest_workers"
    ).fetchone()
    assert started and beat
    assert table.live_workers("all") == ["A"]


def test_prune_and_forget_workers(table, db):
    table.heartbeat("A", "all")
    table.heartbeat("B", "all")
    table.heartbeat("C", "all")
    db.execute(
        "UPDATE ingest_workers SET heartbeat_at = now() - interval '2 hours' "
        "WHERE worker_id = 'A'"
    )

    pruned = table.prune_workers(3600)
    table.forget_worker("B")

    assert pruned == ["A"]
    ids = db.execute("SELECT worker_id FROM ingest_workers").fetchall()
    assert ids == [("C",)]


# -- reset --------------------------------------------------------------------


def test_reset_to_sequence_frees_the_lease_and_fences_the_holder(table, db):
    table.ensure_rows(even_shards(2))
    table.take(shard_id(0), "A", None, 0)

    rewound = table.reset(shard_id(0), after_sequence="495903")

    stored = row(db, shard_id(0))
    assert rewound == [shard_id(0)]
    assert stored["checkpoint_sequence"] == "495903"
    assert stored["reset_to_timestamp"] is None
    assert (stored["owner"], stored["lease_counter"]) == (None, 2)
    assert not table.renew(shard_id(0), "A", 1)
    assert row(db, shard_id(1))["lease_counter"] == 0


def test_reset_stream_to_timestamp_reopens_every_shard(table, db):
    table.ensure_rows(even_shards(3))
    table.take(shard_id(1), "A", None, 0)
    db.execute(
        f"UPDATE shard_leases SET checkpoint_sequence = '{SHARD_END}' "
        "WHERE shard_id = %s", (shard_id(0),),
    )
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    rewound = table.reset(at_timestamp=at)

    assert rewound == [shard_id(0), shard_id(1), shard_id(2)]
    for lease in table.list():
        assert lease.checkpoint_sequence is None
        assert lease.reset_to_timestamp == at
        assert lease.owner is None
    assert [lease.lease_counter for lease in table.list()] == [1, 2, 1]


@pytest.mark.parametrize(
    "shard, kwargs",
    [
        (shard_id(0), {}),
        (shard_id(0), {"after_sequence": "1", "at_timestamp":
                       datetime(2026, 1, 1, tzinfo=timezone.utc)}),
        (None, {"after_sequence": "1"}),
        (shard_id(0), {"after_sequence": "12ab"}),
        (shard_id(0), {"at_timestamp": datetime(2026, 1, 1)}),
        (shard_id(7), {"after_sequence": "1"}),
    ],
)
def test_reset_with_bad_arguments_is_a_config_error_and_changes_nothing(
    table, db, shard, kwargs
):
    table.ensure_rows(even_shards(1))

    with pytest.raises(ConfigError):
        table.reset(shard, **kwargs)

    stored = row(db, shard_id(0))
    assert stored["lease_counter"] == 0
    assert stored["checkpoint_sequence"] is None


def test_prune_gone_keeps_rows_created_after_the_listing_began(table, db):
    table.ensure_rows(even_shards(2))
    listed_at = table.now()
    # Another worker finds a newer shard after this worker's listing began.
    db.execute("SELECT pg_sleep(0.01)")
    table.ensure_rows(even_shards(3))

    pruned = table.prune_gone([shard_id(0), shard_id(1)], listed_at)

    assert pruned == []
    assert len(table.list()) == 3
