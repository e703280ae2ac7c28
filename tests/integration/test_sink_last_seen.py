"""ven_last_seen moves forward only, whatever order readings arrive in."""

from datetime import timedelta

from sink_support import (  # noqa: F401  (sink is a fixture)
    ARRIVED,
    T0,
    add_lease,
    batch,
    meta,
    reading,
    sink,
)
from worker.records.model import Reason, Reject


def _last_seen(db) -> dict:
    return {
        ven: (reading_at, seen_at)
        for ven, reading_at, seen_at in db.execute(
            "SELECT ven_id, last_reading_at, last_seen_at FROM ven_last_seen"
        ).fetchall()
    }


def _at(seconds: int):
    return T0 + timedelta(seconds=seconds)


def test_newest_reading_and_arrival_win_in_any_order(db, sink):
    lease = add_lease(db)
    late_arrival = ARRIVED + timedelta(minutes=5)

    # Within one batch: out of order, the newest reading arriving first.
    sink.write(batch(lease, [
        reading("ven-a", 30, record=meta("1", arrived=ARRIVED)),
        reading("ven-a", 10, record=meta("2", arrived=late_arrival)),
        reading("ven-b", 5, record=meta("3", arrived=ARRIVED)),
    ], seq="3"))

    assert _last_seen(db) == {
        "ven-a": (_at(30), late_arrival),
        "ven-b": (_at(5), ARRIVED),
    }

    # A later batch carrying older readings, delivered from a lagging shard.
    sink.write(batch(lease, [
        reading("ven-a", 20, record=meta("4", arrived=ARRIVED)),
        reading("ven-b", 50, record=meta("5", arrived=ARRIVED)),
    ], seq="5"))

    assert _last_seen(db) == {
        "ven-a": (_at(30), late_arrival),
        "ven-b": (_at(50), ARRIVED),
    }


def test_reading_without_arrival_time_counts_as_seen_now(db, sink):
    lease = add_lease(db)

    sink.write(batch(lease, [reading("ven-a", 0, record=meta(arrived=None))]))

    (ok,) = db.execute(
        "SELECT last_seen_at BETWEEN now() - interval '1 hour' AND now() "
        "FROM ven_last_seen"
    ).fetchone()
    assert ok


def test_duplicates_and_rejects_do_not_touch_last_seen(db, sink):
    lease = add_lease(db)
    sink.write(batch(lease, [reading("ven-a", 10)], seq="1"))
    before = _last_seen(db)

    sink.write(batch(lease, [
        reading("ven-a", 10, record=meta("2", arrived=ARRIVED
                                         + timedelta(days=1))),
        Reject(Reason.BAD_FIELD, "x", b"{}", meta("3")),
    ], seq="3"))

    assert _last_seen(db) == before
