"""The fence and the checkpoint: nothing is written without the lease, the
checkpoint moves only together with the rows, and a failed transaction
leaves nothing half-done."""

import collections

import psycopg
import pytest

from sink_support import (  # noqa: F401  (sink is a fixture)
    add_lease,
    batch,
    count,
    lease_row,
    meta,
    reading,
    sink,
)
from worker.db.connect import connect
from worker.errors import LeaseLost, WorkerError
from worker.records.model import Reason, Reject
from worker.sink import SHARD_END, LeaseToken, PostgresSink
from worker.sink import postgres

WRITTEN_TABLES = ("ven_telemetry", "ven_load_samples", "ingest_rejects",
                  "ven_last_seen")


def _mixed_items():
    return [
        reading("ven-1", 0, record=meta("1")),
        Reject(Reason.NOT_JSON, "no", b"\x01", meta("2")),
        reading("ven-2", 0, record=meta("3")),
    ]


def _nothing_written(db) -> bool:
    return all(count(db, t) == 0 for t in WRITTEN_TABLES)


@pytest.mark.parametrize("owner, counter", [("worker-b", 1), ("worker-a", 2)])
def test_lease_moved_on_raises_lease_lost_and_writes_nothing(
    db, sink, owner, counter
):
    lease = add_lease(db, owner="worker-a", counter=1)
    stale = LeaseToken(lease.stream_name, lease.shard_id, owner, counter)
    before = lease_row(db)

    with pytest.raises(LeaseLost):
        sink.write(batch(stale, _mixed_items(), seq="3", lag=5))

    assert _nothing_written(db)
    assert lease_row(db) == before
    # The connection is usable again: the same sink stores under the real
    # lease.
    assert sink.write(batch(lease, _mixed_items(), seq="3")).stored == 2


def test_unknown_shard_raises_lease_lost(db, sink):
    add_lease(db)
    ghost = LeaseToken("other-stream", "shardId-000000000001", "worker-a", 1)

    with pytest.raises(LeaseLost):
        sink.write(batch(ghost, [reading("ven-1", 0)]))

    assert _nothing_written(db)


def test_checkpoint_and_counters_move_with_the_rows(db, sink):
    lease = add_lease(db)
    assert lease_row(db)["checkpoint_sequence"] is None

    result = sink.write(batch(lease, _mixed_items(), seq="3", sub=2, lag=1500))

    assert result.stored == 2
    assert result.rejected == collections.Counter({Reason.NOT_JSON: 1})
    row = lease_row(db)
    assert row["checkpoint_sequence"] == "3"
    assert row["checkpoint_sub_sequence"] == 2
    assert (row["records_stored"], row["duplicates_dropped"],
            row["records_rejected"]) == (2, 0, 1)
    assert row["millis_behind_latest"] == 1500
    assert row["last_commit_at"] is not None

    sink.write(batch(lease, [reading("ven-1", 0, record=meta("4"))], seq="4"))

    row = lease_row(db)
    assert row["checkpoint_sequence"] == "4"
    assert (row["records_stored"], row["duplicates_dropped"],
            row["records_rejected"]) == (2, 1, 1)
    # A batch that does not know the lag keeps the last figure.
    assert row["millis_behind_latest"] == 1500


def test_empty_batch_at_shard_end_moves_checkpoint_only(db, sink):
    lease = add_lease(db)

    result = sink.write(batch(lease, [], seq=SHARD_END))

    assert (result.stored, result.duplicates) == (0, 0)
    assert lease_row(db)["checkpoint_sequence"] == SHARD_END
    assert _nothing_written(db)


def test_connection_lost_mid_batch_leaves_nothing_and_retry_stores_all(
    pg_url, migrated_schema, db, monkeypatch
):
    lease = add_lease(db)
    first = PostgresSink(connect(pg_url, migrated_schema))
    pid = first._conn.info.backend_pid
    real_touch = postgres.touch_last_seen

    # The seam: after the COPY, before the checkpoint, the server goes away.
    def cut_connection(cur, stored):
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        real_touch(cur, stored)

    monkeypatch.setattr(postgres, "touch_last_seen", cut_connection)
    with pytest.raises(psycopg.OperationalError):
        first.write(batch(lease, _mixed_items(), seq="3"))
    first.close()

    assert _nothing_written(db)
    assert lease_row(db)["checkpoint_sequence"] is None

    monkeypatch.setattr(postgres, "touch_last_seen", real_touch)
    retry = PostgresSink(connect(pg_url, migrated_schema))
    result = retry.write(batch(lease, _mixed_items(), seq="3"))
    retry.close()

    assert (result.stored, result.duplicates) == (2, 0)
    assert count(db, "ven_telemetry") == 2
    assert count(db, "ingest_rejects") == 1
    assert lease_row(db)["checkpoint_sequence"] == "3"


def test_serialization_failure_rolls_back_and_same_sink_retries(
    db, sink, monkeypatch
):
    lease = add_lease(db)
    real_move = postgres.move_checkpoint
    calls = []

    def conflict_once(cur, *args):
        calls.append(args)
        if len(calls) == 1:
            cur.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'conflict' "
                "USING ERRCODE = 'serialization_failure'; END $$"
            )
        real_move(cur, *args)

    monkeypatch.setattr(postgres, "move_checkpoint", conflict_once)

    with pytest.raises(psycopg.errors.SerializationFailure) as caught:
        sink.write(batch(lease, _mixed_items(), seq="3"))
    assert isinstance(caught.value, psycopg.OperationalError)
    assert _nothing_written(db)
    assert lease_row(db)["checkpoint_sequence"] is None

    result = sink.write(batch(lease, _mixed_items(), seq="3"))

    assert result.stored == 2
    assert count(db, "ven_telemetry") == 2
    assert lease_row(db)["records_stored"] == 2


def test_connection_with_a_transaction_open_is_refused(db, pg_url,
                                                        migrated_schema):
    lease = add_lease(db)
    conn = connect(pg_url, migrated_schema)
    conn.execute("SELECT 1")  # opens a transaction, never committed
    sink = PostgresSink(conn)

    with pytest.raises(WorkerError):
        sink.write(batch(lease, [reading("ven-1", 0)]))
    sink.close()

    assert _nothing_written(db)


def test_batch_retried_after_its_commit_went_through_is_not_stored_again(
    db, sink
):
    """The COMMIT succeeded but its acknowledgement was lost, so the caller
    retries the same batch: rejects must not be filed twice, nor the lease
    counters moved twice."""
    lease = add_lease(db)
    items = _mixed_items()
    sink.write(batch(lease, items, seq="3", lag=100))
    before = lease_row(db)

    result = sink.write(batch(lease, items, seq="3", lag=100))

    assert (result.stored, result.duplicates) == (0, 3)
    assert sum(result.rejected.values()) == 0
    assert count(db, "ingest_rejects") == 1
    assert count(db, "ven_telemetry") == 2
    assert lease_row(db) == before


def test_commit_clears_an_operators_reset_position(db, sink):
    lease = add_lease(db)
    db.execute("UPDATE shard_leases SET reset_to_timestamp = now()")

    sink.write(batch(lease, _mixed_items(), seq="3"))

    assert db.execute(
        "SELECT reset_to_timestamp FROM shard_leases").fetchone() == (None,)


def test_commit_renews_the_lease_when_told_the_duration(
        pg_url, migrated_schema, db):
    lease = add_lease(db)
    db.execute("UPDATE shard_leases SET lease_expires_at = now()")
    renewing = PostgresSink(connect(pg_url, migrated_schema),
                            postgres.SinkSettings(lease_duration_s=600))
    try:
        renewing.write(batch(lease, _mixed_items(), seq="3"))
    finally:
        renewing.close()

    left = db.execute("SELECT extract(epoch FROM lease_expires_at - now()) "
                      "FROM shard_leases").fetchone()[0]
    assert 500 < left <= 600


def test_commit_leaves_the_lease_to_the_lease_loop_by_default(db, sink):
    lease = add_lease(db)
    db.execute("UPDATE shard_leases SET lease_expires_at = "
               "'2030-01-01T00:00:00Z'")

    sink.write(batch(lease, _mixed_items(), seq="3"))

    assert db.execute("SELECT lease_expires_at = '2030-01-01T00:00:00Z' "
                      "FROM shard_leases").fetchone() == (True,)
