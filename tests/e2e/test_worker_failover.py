"""Worker processes sharing a stream through leases: balance, crash, pause,
and graceful stop. Every test ends by checking that each reading put into the
stream is in the table exactly once."""

import signal

from tests.e2e.worker_harness import (  # noqa: F401 (start_worker fixture)
    TEST_LEASE_DURATION_S,
    Producer,
    WorkerProcess,
    assert_exactly_once,
    lease_owners,
    put_readings,
    reading,
    start_worker,
    stored_count,
    wait_until,
    worker_env,
)


def test_workers_balance_rebalance_and_survive_sigkill(
        pg_url, migrated_schema, make_stream, kinesis_client, start_worker):
    stream = make_stream(4)
    sent = put_readings(kinesis_client, stream,
                        [reading(v, s) for v in range(40) for s in range(5)])

    w1 = start_worker("w1", stream)
    w2 = start_worker("w2", stream)
    wait_until(lambda: lease_owners(pg_url, migrated_schema, stream)
               == {"w1": 2, "w2": 2}, "two workers at 2 leases each")

    w3 = start_worker("w3", stream)
    wait_until(lambda: sorted(lease_owners(pg_url, migrated_schema,
                                           stream).values()) == [1, 1, 2],
               "three workers sharing 4 leases 2/1/1")
    sent += put_readings(kinesis_client, stream,
                         [reading(v, s) for v in range(40)
                          for s in range(5, 10)])

    w1.signal(signal.SIGKILL)
    w1.wait()
    owners = wait_until(
        lambda: (o := lease_owners(pg_url, migrated_schema, stream))
        and "w1" not in o and sum(o.values()) == 4 and o,
        "survivors holding all 4 leases")
    assert set(owners) == {"w2", "w3"}
    sent += put_readings(kinesis_client, stream,
                         [reading(v, s) for v in range(40)
                          for s in range(10, 15)])

    wait_until(lambda: stored_count(pg_url, migrated_schema) >= len(sent),
               f"{len(sent)} readings stored")
    for proc in (w2, w3):
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert_exactly_once(pg_url, migrated_schema, sent)


def test_paused_worker_cannot_commit_after_losing_its_lease(
        pg_url, migrated_schema, make_stream, kinesis_client, start_worker):
    stream = make_stream(1)
    producer = Producer(kinesis_client, stream)
    producer.start()
    w1 = start_worker("w1", stream)
    wait_until(lambda: lease_owners(pg_url, migrated_schema, stream)
               == {"w1": 1}, "w1 holding the shard")
    wait_until(lambda: stored_count(pg_url, migrated_schema) > 0,
               "first readings stored")
    w2 = start_worker("w2", stream)

    # Paused mid-stream (its reader may hold a fetched page) past expiry.
    w1.signal(signal.SIGSTOP)
    wait_until(lambda: lease_owners(pg_url, migrated_schema, stream)
               == {"w2": 1}, "w2 taking the expired lease",
               deadline_s=TEST_LEASE_DURATION_S * 20)
    before = stored_count(pg_url, migrated_schema)
    wait_until(lambda: stored_count(pg_url, migrated_schema) > before,
               "w2 storing new readings")
    w1.signal(signal.SIGCONT)

    sent = producer.finish()
    wait_until(lambda: stored_count(pg_url, migrated_schema) >= len(sent),
               f"{len(sent)} readings stored")
    # Resumed, w1 notices the lease is gone (renewal or fenced commit fails)
    # and never takes the shard back by force while w2 is alive.
    wait_until(lambda: "lost shard" in w1.log() or "lease lost" in w1.log(),
               "w1 noticing its lease is gone")
    for proc in (w1, w2):
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert_exactly_once(pg_url, migrated_schema, sent)


def test_sigterm_under_load_exits_zero_and_hands_shards_over(
        pg_url, migrated_schema, make_stream, kinesis_client, start_worker):
    stream = make_stream(2)
    producer = Producer(kinesis_client, stream)
    producer.start()
    w1 = start_worker("w1", stream)
    w2 = start_worker("w2", stream)
    wait_until(lambda: lease_owners(pg_url, migrated_schema, stream)
               == {"w1": 1, "w2": 1}, "one lease each")
    wait_until(lambda: stored_count(pg_url, migrated_schema) > 50,
               "readings flowing")

    w1.signal(signal.SIGTERM)
    assert w1.wait(30) == 0
    assert "released 1 shards" in w1.log()
    # Released, not expired: w2 takes it on its next cycle.
    wait_until(lambda: lease_owners(pg_url, migrated_schema, stream)
               == {"w2": 2}, "w2 holding both shards")

    sent = producer.finish()
    wait_until(lambda: stored_count(pg_url, migrated_schema) >= len(sent),
               f"{len(sent)} readings stored")
    w2.signal(signal.SIGTERM)
    assert w2.wait(30) == 0
    assert_exactly_once(pg_url, migrated_schema, sent)


def _lease_start(pg_url: str, schema: str, stream: str):
    """(owner, reset_to_timestamp, checkpoint) of a 1-shard stream's lease."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        return conn.execute(
            "SELECT owner, reset_to_timestamp, checkpoint_sequence "
            "FROM shard_leases WHERE stream_name = %s", (stream,)).fetchone()


def test_latest_start_survives_a_crash_before_the_first_commit(
        pg_url, migrated_schema, make_stream, kinesis_client,
        localstack_endpoint, tmp_path):
    # Started at LATEST, a worker killed before its first commit leaves no
    # checkpoint. Its successor must start where it did, not at a new LATEST
    # after the readings put in between.
    stream = make_stream(1)
    env = worker_env(pg_url, migrated_schema, localstack_endpoint, stream)
    env["INITIAL_POSITION"] = "LATEST"
    w1 = WorkerProcess("w1", env, tmp_path)
    w2 = None
    try:
        wait_until(lambda: "consumer started" in w1.log()
                   and _lease_start(pg_url, migrated_schema,
                                    stream)[0] == "w1",
                   "w1 reading the shard")
        w1.signal(signal.SIGKILL)
        w1.wait()
        sent = put_readings(kinesis_client, stream,
                            [reading(v, 0) for v in range(30)])

        w2 = WorkerProcess("w2", env, tmp_path)
        wait_until(lambda: stored_count(pg_url, migrated_schema) >= len(sent),
                   f"w2 storing the {len(sent)} readings put after the crash",
                   deadline_s=TEST_LEASE_DURATION_S * 20)
        w2.signal(signal.SIGTERM)
        assert w2.wait() == 0
        owner, reset_to, checkpoint = _lease_start(pg_url, migrated_schema,
                                                   stream)
        assert reset_to is None and checkpoint is not None  # first commit
        assert_exactly_once(pg_url, migrated_schema, sent)
    finally:
        for proc in (w1, w2):
            if proc is not None:
                proc.stop()
