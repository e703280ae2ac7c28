"""Split, merge and UpdateShardCount while readings are written, with two
workers reading. Every parent must reach SHARD_END (stored to its end)
before its children are read, and nothing is lost or doubled."""

import psycopg

SHARDS = 2
TARGET_SHARDS = 4


def _wait_active(scenario) -> None:
    scenario.wait_for(
        lambda: scenario.kinesis.describe_stream_summary(
            StreamName=scenario.stream)["StreamDescriptionSummary"][
            "StreamStatus"] == "ACTIVE", "stream ACTIVE again")


def _open_shards(scenario) -> list[dict]:
    shards = scenario.kinesis.list_shards(StreamName=scenario.stream)["Shards"]
    open_ = [s for s in shards
             if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    return sorted(open_,
                  key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))


def _split(scenario) -> None:
    first = _open_shards(scenario)[0]
    low = int(first["HashKeyRange"]["StartingHashKey"])
    high = int(first["HashKeyRange"]["EndingHashKey"])
    scenario.kinesis.split_shard(StreamName=scenario.stream,
                                 ShardToSplit=first["ShardId"],
                                 NewStartingHashKey=str((low + high) // 2))
    _wait_active(scenario)


def _merge(scenario) -> None:
    # The upper child of the split with its neighbour.
    shards = _open_shards(scenario)
    scenario.kinesis.merge_shards(StreamName=scenario.stream,
                                  ShardToMerge=shards[1]["ShardId"],
                                  AdjacentShardToMerge=shards[2]["ShardId"])
    _wait_active(scenario)


def _update_count(scenario) -> None:
    scenario.kinesis.update_shard_count(StreamName=scenario.stream,
                                        TargetShardCount=TARGET_SHARDS,
                                        ScalingType="UNIFORM_SCALING")
    _wait_active(scenario)


def _lease_rows(scenario) -> list[tuple]:
    with psycopg.connect(scenario.pg_url) as conn:
        return conn.execute(
            f'SELECT shard_id, checkpoint_sequence FROM "{scenario.schema}"'
            ".shard_leases WHERE stream_name = %s",
            (scenario.stream,)).fetchall()


def test_split_merge_and_update_shard_count_under_load(scenario):
    scenario.make_stream(SHARDS)
    scenario.start_worker("w1")
    scenario.start_worker("w2")
    scenario.start_load()
    scenario.wait_progress(100)

    for step in (_split, _merge, _update_count):
        step(scenario)
        scenario.wait_progress(100)

    closed = {s["ShardId"] for s in scenario.kinesis.list_shards(
        StreamName=scenario.stream)["Shards"]
        if "EndingSequenceNumber" in s["SequenceNumberRange"]}
    scenario.notes["shards"] = (f"{len(_lease_rows(scenario))} leased, "
                                f"{len(closed)} closed")
    scenario.finish()

    ended = {shard for shard, checkpoint in _lease_rows(scenario)
             if checkpoint == "SHARD_END"}
    assert ended == closed
