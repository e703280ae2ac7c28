"""A poison storm: one record in ten is malformed, every kind in
poison_cases.jsonl in turn, plus a good and a broken KPL aggregate, mixed
into good readings on every shard. Each must be rejected with its reason
and its bytes, or stored where its case says stored; no shard may stall."""

import psycopg

from tests.faults.load import ReadingSource
from tests.faults.poison import REFUSE_CHECK_SQL, PoisonMix, load_kinds

SHARDS = 2
POISON_EVERY = 10  # 10% of records
ROUNDS_OF_KINDS = 2  # every kind sent at least this often


def test_poison_storm(scenario):
    with psycopg.connect(scenario.pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{scenario.schema}"')
        # An operator's CHECK: the db-refused kind passes the decoder and is
        # refused by PostgreSQL during the load.
        conn.execute(REFUSE_CHECK_SQL)
    kinds = load_kinds()
    mix = PoisonMix(ReadingSource(), kinds, every=POISON_EVERY)
    scenario.make_stream(SHARDS)
    scenario.start_worker("w1")
    scenario.start_worker("w2")
    scenario.start_load(mix)

    all_kinds = len(kinds) + 2  # and the two aggregates
    scenario.wait_for(
        lambda: len(mix.sent_kinds) == all_kinds
        and min(mix.sent_kinds.values()) >= ROUNDS_OF_KINDS,
        f"every kind sent {ROUNDS_OF_KINDS} times")

    scenario.notes["kinds"] = all_kinds
    report = scenario.finish()
    assert report.rejected.get("database_refused", 0) >= ROUNDS_OF_KINDS
    assert report.rejected.get("bad_aggregate", 0) >= ROUNDS_OF_KINDS
