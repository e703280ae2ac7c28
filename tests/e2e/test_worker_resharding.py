"""Resharding under load: a split and a merge while readings are written.

Every reading lands exactly once, and for every VEN the readings of a parent
shard are committed before any of its children's (a child is leased only
after its parents reached SHARD_END)."""

import signal

import psycopg

from tests.e2e.worker_harness import (  # noqa: F401 (start_worker fixture)
    Producer,
    assert_exactly_once,
    start_worker,
    stored_count,
    wait_until,
)


def _wait_active(client, stream: str) -> None:
    wait_until(lambda: client.describe_stream_summary(StreamName=stream)[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE",
        f"{stream} ACTIVE again")


def _open_shards(client, stream: str) -> list[dict]:
    shards = client.list_shards(StreamName=stream)["Shards"]
    return [s for s in shards
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


def _split_then_merge(client, stream: str) -> None:
    first = _open_shards(client, stream)[0]
    low = int(first["HashKeyRange"]["StartingHashKey"])
    high = int(first["HashKeyRange"]["EndingHashKey"])
    client.split_shard(StreamName=stream, ShardToSplit=first["ShardId"],
                       NewStartingHashKey=str((low + high) // 2))
    _wait_active(client, stream)

    # Merge the upper child of the split with its neighbour.
    shards = sorted(_open_shards(client, stream),
                    key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    client.merge_shards(StreamName=stream, ShardToMerge=shards[1]["ShardId"],
                        AdjacentShardToMerge=shards[2]["ShardId"])
    _wait_active(client, stream)


def _parents_before_children(pg_url: str, schema: str, stream: str) -> int:
    """Checks every (parent, child, VEN); returns how many pairs had readings
    on both sides."""
    with psycopg.connect(pg_url) as conn:
        lineage = conn.execute(
            f'SELECT shard_id, parent_shard_ids FROM "{schema}".shard_leases '
            "WHERE stream_name = %s", (stream,)).fetchall()
        checked = 0
        for child, parents in lineage:
            for parent in parents:
                rows = conn.execute(
                    f"""
                    SELECT p.ven_id, p.last_parent, c.first_child
                    FROM (SELECT ven_id, max(created_at) AS last_parent
                          FROM "{schema}".ven_telemetry WHERE shard_id = %s
                          GROUP BY ven_id) p
                    JOIN (SELECT ven_id, min(created_at) AS first_child
                          FROM "{schema}".ven_telemetry WHERE shard_id = %s
                          GROUP BY ven_id) c USING (ven_id)
                    """, (parent, child)).fetchall()
                for ven, last_parent, first_child in rows:
                    assert last_parent < first_child, (
                        f"{ven}: child {child} committed before its parent "
                        f"{parent} finished")
                    checked += 1
    return checked


def test_split_and_merge_under_load_keep_order_and_exactly_once(
        pg_url, migrated_schema, make_stream, kinesis_client, start_worker):
    stream = make_stream(2)
    producer = Producer(kinesis_client, stream)
    producer.start()
    workers = [start_worker("w1", stream), start_worker("w2", stream)]
    wait_until(lambda: stored_count(pg_url, migrated_schema) > 50,
               "readings flowing")

    _split_then_merge(kinesis_client, stream)
    mark = len(producer.sent)
    wait_until(lambda: len(producer.sent) > mark + 200,
               "readings written after the merge")

    sent = producer.finish()
    wait_until(lambda: stored_count(pg_url, migrated_schema) >= len(sent),
               f"{len(sent)} readings stored")
    for proc in workers:
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0

    assert_exactly_once(pg_url, migrated_schema, sent)
    assert _parents_before_children(pg_url, migrated_schema, stream) > 0
    with psycopg.connect(pg_url) as conn:
        ended = conn.execute(
            f'SELECT count(*) FROM "{migrated_schema}".shard_leases '
            "WHERE stream_name = %s AND checkpoint_sequence = 'SHARD_END'",
            (stream,)).fetchone()[0]
    assert ended == 3  # the split parent, its upper child, the neighbour
