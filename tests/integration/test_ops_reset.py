"""``reset`` refusals on real PostgreSQL: every nonsense request and every
failed check ends in one line, and no lease row changes.

Resets that go through need Kinesis to confirm nothing would be skipped;
they are in tests/e2e/test_ops_reset.py.
"""

from datetime import datetime, timedelta, timezone

import pytest

from worker.config import Settings
from worker.errors import ConfigError
from worker.ops.reset import check_target, reset

STREAM = "ops-reset"
UNREACHABLE = "http://127.0.0.1:9"
SHARD = "shardId-000000000000"
PAST = datetime(2025, 12, 1, tzinfo=timezone.utc)


@pytest.fixture
def settings(pg_url, migrated_schema) -> Settings:
    return Settings(stream_name=STREAM, database_url=pg_url,
                    pg_schema=migrated_schema, kinesis_endpoint=UNREACHABLE)


def add_lease(db, shard: str = SHARD, checkpoint: str | None = "1234",
              owner: str | None = "w1") -> None:
    db.execute(
        "INSERT INTO shard_leases (stream_name, shard_id, starting_hash_key, "
        "ending_hash_key, owner, lease_counter, lease_expires_at, "
        "checkpoint_sequence) VALUES (%s, %s, '0', '1', %s, 3, "
        "now() + interval '1 minute', %s)",
        (STREAM, shard, owner, checkpoint))


def lease_rows(db) -> list[tuple]:
    return db.execute(
        "SELECT shard_id, owner, lease_counter, checkpoint_sequence, "
        "reset_to_timestamp FROM shard_leases ORDER BY shard_id").fetchall()


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "exactly one of --shard ID or --all"),
    (dict(shard=SHARD, all_shards=True, to_timestamp=PAST),
     "exactly one of --shard ID or --all"),
    (dict(all_shards=True), "exactly one of --to-timestamp or --to-sequence"),
    (dict(shard=SHARD, to_timestamp=PAST, to_sequence="12"),
     "exactly one of --to-timestamp or --to-sequence"),
    (dict(all_shards=True, to_sequence="12"), "needs --shard"),
    (dict(shard=SHARD, to_sequence="12abc"), "is not a sequence number"),
    (dict(shard=SHARD, to_timestamp=datetime(2025, 12, 1)), "needs a zone"),
    (dict(all_shards=True,
          to_timestamp=datetime.now(timezone.utc) + timedelta(hours=1)),
     "is in the future"),
])
def test_reset_refuses_nonsense(kwargs, message):
    args = dict(shard=None, all_shards=False, to_timestamp=None,
                to_sequence=None) | kwargs

    with pytest.raises(ConfigError, match=message):
        check_target(**args)


def test_reset_refuses_an_unknown_shard_and_changes_nothing(db, settings):
    add_lease(db)
    before = lease_rows(db)

    with pytest.raises(ConfigError, match="has no shard shardId-000000000042"):
        reset(settings, shard="shardId-000000000042", to_timestamp=PAST)

    assert lease_rows(db) == before


def test_reset_of_a_stream_without_leases_says_so(db, settings):
    with pytest.raises(ConfigError, match="has no lease rows"):
        reset(settings, all_shards=True, to_timestamp=PAST)


def test_reset_refuses_when_kinesis_cannot_confirm(db, settings):
    add_lease(db)
    add_lease(db, "shardId-000000000001", checkpoint="SHARD_END", owner=None)
    before = lease_rows(db)

    with pytest.raises(ConfigError, match="could not confirm .*nothing was "
                                          "reset"):
        reset(settings, all_shards=True, to_timestamp=PAST)

    assert lease_rows(db) == before


def test_reset_through_the_cli_is_one_line_and_exit_2(db, settings, capsys,
                                                      monkeypatch):
    from worker import cli

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PG_SCHEMA", settings.pg_schema)
    monkeypatch.setenv("STREAM_NAME", STREAM)

    code = cli.main(["reset", "--shard", "shardId-000000000042",
                     "--to-timestamp", "2025-12-01T00:00:00Z"])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "has no lease rows" in err[0]
