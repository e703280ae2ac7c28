"""Duplicates are counted, never stored twice, and never an error: within a
batch, across batches, and when another worker stores the same reading
while this batch is in flight."""

import threading

from sink_support import (  # noqa: F401  (sink is a fixture)
    SHARD,
    T0,
    add_lease,
    batch,
    count,
    lease_row,
    meta,
    note_calls,
    reading,
    sink,
)
from worker.db.connect import connect
from worker.sink import PostgresSink, load
from worker.sink.partitions import create_partitions


def ven_ids(readings) -> list[str]:
    return sorted(r.ven_id for r in readings)


# Generous: a waiting thread on a busy two-core machine, not a timing claim.
DEADLINE_S = 60.0


def test_same_reading_twice_in_batch_and_once_later_stores_one(db, sink):
    lease = add_lease(db)
    first = reading("ven-001", 0, record=meta("10"))
    again = reading("ven-001", 0, record=meta("11"), used_power_kw=9.9)

    one = sink.write(batch(lease, [first, again], seq="11"))
    two = sink.write(batch(lease, [reading("ven-001", 0, record=meta("12"))],
                           seq="12"))

    assert (one.stored, one.duplicates) == (1, 1)
    assert (two.stored, two.duplicates) == (0, 1)
    # The first one wins.
    assert db.execute(
        "SELECT used_power_kw, sequence_number FROM ven_telemetry"
    ).fetchall() == [(3.18, "10")]
    assert count(db, "ven_load_samples") == 2
    row = lease_row(db)
    assert (row["records_stored"], row["duplicates_dropped"]) == (1, 2)
    assert row["checkpoint_sequence"] == "12"


def test_batch_of_only_duplicates_moves_checkpoint(db, sink):
    lease = add_lease(db)
    sink.write(batch(lease, [reading("ven-1", 0), reading("ven-2", 0)],
                     seq="1"))

    result = sink.write(batch(lease, [reading("ven-2", 0),
                                      reading("ven-1", 0)], seq="2"))

    assert (result.stored, result.duplicates) == (0, 2)
    assert lease_row(db)["checkpoint_sequence"] == "2"
    assert count(db, "ven_telemetry") == 2


def _wait_until_blocked_on_lock(db, pid: int) -> None:
    pause = threading.Event()
    for _ in range(int(DEADLINE_S / 0.05)):
        waiting = db.execute(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
            "WHERE pid = %s", (pid,)
        ).fetchone()
        if waiting and waiting[0]:
            return
        pause.wait(0.05)
    raise AssertionError(f"backend {pid} never waited on a lock")


def test_reading_stored_by_another_worker_mid_batch_counts_as_duplicate(
    pg_url, migrated_schema, db, monkeypatch
):
    probes = note_calls(monkeypatch, load, "_stored_positions", len)
    lease = add_lease(db)
    shared = reading("ven-7", 0)
    mine = [reading("ven-6", 0), shared, reading("ven-8", 0)]
    create_partitions(db, [T0.date()])

    # Another worker (reading a different shard) stores the shared reading
    # and has not committed yet: this sink's probe cannot see the row, and
    # its COPY has to wait on the other transaction's index entry.
    other = connect(pg_url, migrated_schema)
    other.execute(
        "INSERT INTO ven_telemetry (ven_id, timestamp, raw_payload, shard_id) "
        "VALUES (%s, %s, '{}', 'shardId-000000000009')",
        (shared.ven_id, shared.timestamp),
    )
    sink = PostgresSink(connect(pg_url, migrated_schema))
    outcome = {}
    writer = threading.Thread(
        target=lambda: outcome.update(result=sink.write(batch(lease, mine)))
    )
    writer.start()
    try:
        _wait_until_blocked_on_lock(db, sink._conn.info.backend_pid)
    finally:
        other.commit()
        other.close()
        writer.join(DEADLINE_S)
    sink.close()

    result = outcome["result"]
    assert (result.stored, result.duplicates) == (2, 1)
    assert sum(result.rejected.values()) == 0
    assert db.execute(
        "SELECT ven_id, shard_id FROM ven_telemetry ORDER BY ven_id"
    ).fetchall() == [
        ("ven-6", SHARD), ("ven-7", "shardId-000000000009"), ("ven-8", SHARD),
    ]
    assert count(db, "ven_load_samples") == 4
    assert lease_row(db)["duplicates_dropped"] == 1
    # The first probe missed the uncommitted row; the COPY met it, and a
    # second probe found it before the retry.
    assert probes == [3, 3]


def test_unique_violation_is_never_raised_when_probe_misses(
    db, sink, monkeypatch
):
    """The probe is the seam: make it miss once, as a race would."""
    lease = add_lease(db)
    sink.write(batch(lease, [reading("ven-1", 0)], seq="1"))
    real_probe = load._stored_positions
    calls = []

    def probe_missing_first(cur, readings):
        calls.append(len(readings))
        return set() if len(calls) == 1 else real_probe(cur, readings)

    monkeypatch.setattr(load, "_stored_positions", probe_missing_first)
    result = sink.write(batch(lease, [reading("ven-2", 0),
                                      reading("ven-1", 0)], seq="2"))

    assert (result.stored, result.duplicates) == (1, 1)
    assert len(calls) == 2
    assert count(db, "ven_telemetry") == 2
    assert count(db, "ven_load_samples") == 4
    assert lease_row(db)["checkpoint_sequence"] == "2"


def test_two_workers_loading_the_same_readings_at_once_store_each_once(
    pg_url, migrated_schema, db
):
    """Two shards carrying the same readings in opposite orders: whichever
    commits first stores them, the other counts them, and neither fails.
    (Copied in batch order instead of key order, the two deadlocked in three
    runs out of three.)"""
    leases = [add_lease(db), add_lease(db, owner="worker-b",
                                       shard="shardId-000000000009")]
    create_partitions(db, [T0.date()])
    readings = [reading(f"ven-{i:04d}", i % 7) for i in range(3000)]
    batches = [batch(leases[0], readings),
               batch(leases[1], list(reversed(readings)))]
    sinks = [PostgresSink(connect(pg_url, migrated_schema)) for _ in batches]
    start = threading.Barrier(2)
    results, errors = [], []

    def write(sink, b):
        try:
            start.wait(DEADLINE_S)
            results.append(sink.write(b))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=pair)
               for pair in zip(sinks, batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    for s in sinks:
        s.close()

    assert errors == []
    assert sum(r.stored for r in results) == 3000
    assert sum(r.duplicates for r in results) == 3000
    assert count(db, "ven_telemetry") == 3000
    assert count(db, "ven_load_samples") == 6000


def test_probe_runs_first_only_while_duplicates_turn_up(db, sink, monkeypatch):
    lease = add_lease(db)
    probes = note_calls(monkeypatch, load, "_stored_positions", ven_ids)

    # A new sink probes first; it finds nothing, so the next batch copies
    # straight away and the probe never runs.
    sink.write(batch(lease, [reading("ven-1", 0)], seq="1"))
    sink.write(batch(lease, [reading("ven-2", 0)], seq="2"))
    assert probes == [["ven-1"]]

    # A re-sent reading, unprobed: the COPY meets it, and only then does
    # the probe run, before the copy is retried without it.
    third = sink.write(batch(lease, [reading("ven-3", 0),
                                     reading("ven-1", 0)], seq="3"))
    assert (third.stored, third.duplicates) == (1, 1)
    assert probes == [["ven-1"], ["ven-1", "ven-3"]]

    # Duplicates turned up, so the next batch probes before its COPY.
    fourth = sink.write(batch(lease, [reading("ven-2", 0),
                                      reading("ven-4", 0)], seq="4"))
    assert (fourth.stored, fourth.duplicates) == (1, 1)
    assert probes[2:] == [["ven-2", "ven-4"]]

    assert count(db, "ven_telemetry") == 4
    assert count(db, "ven_load_samples") == 8
    row = lease_row(db)
    assert (row["records_stored"], row["duplicates_dropped"]) == (4, 2)
    assert row["checkpoint_sequence"] == "4"


def test_repeats_inside_a_batch_do_not_turn_the_probe_on(db, sink,
                                                         monkeypatch):
    # Two copies in one batch say nothing about the table: the next batch
    # still copies without probing first.
    lease = add_lease(db)
    probes = note_calls(monkeypatch, load, "_stored_positions", ven_ids)

    sink.write(batch(lease, [reading("ven-1", 0)], seq="1"))
    second = sink.write(batch(lease, [reading("ven-2", 0),
                                      reading("ven-2", 0)], seq="2"))
    sink.write(batch(lease, [reading("ven-3", 0)], seq="3"))

    assert (second.stored, second.duplicates) == (1, 1)
    assert probes == [["ven-1"]]
    assert count(db, "ven_telemetry") == 3
