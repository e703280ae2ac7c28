"""Daily partitions: made before a load needs them (also by a concurrent
worker), made ahead of time, and dropped for both tables past retention."""

import threading
from datetime import date

import pytest

from sink_support import (  # noqa: F401  (sink is a fixture)
    add_lease,
    batch,
    count,
    reading,
    sink,
)
from worker.db.connect import connect
from worker.errors import TransientError
from worker.sink import (
    PostgresSink,
    SinkSettings,
    drop_expired_partitions,
    ensure_partitions,
)
from worker.sink.partitions import create_partitions, existing_days

DEADLINE_S = 60.0


def _days(db, parent: str) -> list[date]:
    with db.cursor() as cur:
        return sorted(existing_days(cur, parent))


def _both(db) -> list[date]:
    days = _days(db, "ven_telemetry")
    assert days == _days(db, "ven_load_samples")
    return days


def test_write_creates_partitions_for_the_batch_days(db, sink):
    lease = add_lease(db)
    assert _both(db) == []

    sink.write(batch(lease, [reading("ven-1", 0),
                             reading("ven-1", 3 * 86400)]))

    assert _both(db) == [date(2025, 12, 1), date(2025, 12, 4)]


def test_ensure_partitions_makes_today_and_days_ahead(db):
    made = ensure_partitions(db, date(2025, 12, 30), 3)

    expected = [date(2025, 12, 30), date(2025, 12, 31), date(2026, 1, 1),
                date(2026, 1, 2)]
    assert made == expected
    assert _both(db) == expected
    # Again: nothing changes, nothing fails.
    ensure_partitions(db, date(2025, 12, 30), 3)
    assert _both(db) == expected


def test_drop_expired_partitions_drops_both_tables_past_retention(db, sink):
    lease = add_lease(db)
    create_partitions(db, [date(2025, 11, d) for d in (1, 2, 3)])
    sink.write(batch(lease, [reading("ven-1", 0)]))  # 2025-12-01

    dropped = drop_expired_partitions(db, date(2025, 11, 5), retention_days=3)

    # 5 Nov minus 3 days is 2 Nov: kept; 1 Nov is older and goes.
    assert dropped == [date(2025, 11, 1)]
    assert _both(db) == [date(2025, 11, 2), date(2025, 11, 3),
                         date(2025, 12, 1)]

    dropped = drop_expired_partitions(db, date(2025, 12, 31),
                                      retention_days=30)

    assert dropped == [date(2025, 11, 2), date(2025, 11, 3)]
    assert _both(db) == [date(2025, 12, 1)]
    assert count(db, "ven_telemetry") == 1
    assert count(db, "ven_load_samples") == 2


def test_retention_zero_keeps_everything(db):
    create_partitions(db, [date(2000, 1, 1)])

    assert drop_expired_partitions(db, date(2025, 12, 1), 0) == []

    assert _both(db) == [date(2000, 1, 1)]


def test_concurrent_creators_of_the_same_days_both_succeed(
    pg_url, migrated_schema, db
):
    days = [date(2025, 12, d) for d in range(1, 11)]
    conns = [connect(pg_url, migrated_schema) for _ in range(2)]
    errors = []
    start = threading.Barrier(2)

    def create(conn):
        try:
            start.wait(DEADLINE_S)
            create_partitions(conn, days)
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    for c in conns:
        c.close()

    assert errors == []
    assert _both(db) == days


def test_partition_dropped_behind_the_cache_is_made_again(db, sink):
    lease = add_lease(db)
    sink.write(batch(lease, [reading("ven-1", 0)], seq="1"))
    # Another process drops the day this sink has cached as present.
    drop_expired_partitions(db, date(2026, 12, 1), retention_days=1)
    assert _both(db) == []

    with pytest.raises(TransientError):
        sink.write(batch(lease, [reading("ven-2", 0)], seq="2"))
    result = sink.write(batch(lease, [reading("ven-2", 0)], seq="2"))

    assert result.stored == 1
    assert _both(db) == [date(2025, 12, 1)]


def test_sink_maintain_partitions_follows_its_settings(
    pg_url, migrated_schema, db
):
    create_partitions(db, [date(2025, 10, 1)])
    sink = PostgresSink(connect(pg_url, migrated_schema),
                        SinkSettings(retention_days=30,
                                     partitions_ahead_days=2))

    sink.maintain_partitions(date(2025, 12, 1))
    sink.close()

    assert _both(db) == [date(2025, 12, 1), date(2025, 12, 2),
                         date(2025, 12, 3)]
