"""Builders shared by the sink's tests: a lease row to fence on, readings and
samples made directly (no decoder), and a PostgresSink on its own
connection."""

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from worker.db.connect import connect
from worker.records.model import SAMPLE_COLUMNS, Reading, RecordMeta
from worker.sink import Batch, Checkpoint, LeaseToken, PostgresSink

STREAM = "sink-test-stream"
SHARD = "shardId-000000000007"
OWNER = "worker-a"
T0 = datetime(2025, 12, 1, tzinfo=timezone.utc)
ARRIVED = datetime(2025, 12, 1, 0, 0, 30, tzinfo=timezone.utc)


@pytest.fixture
def sink(pg_url, migrated_schema):
    s = PostgresSink(connect(pg_url, migrated_schema))
    yield s
    s.close()


def add_lease(db, owner: str = OWNER, counter: int = 1,
              shard: str = SHARD) -> LeaseToken:
    db.execute(
        "INSERT INTO shard_leases (stream_name, shard_id, starting_hash_key, "
        "ending_hash_key, owner, lease_counter) "
        "VALUES (%s, %s, '0', '100', %s, %s)",
        (STREAM, shard, owner, counter),
    )
    return LeaseToken(STREAM, shard, owner, counter)


def lease_row(db, shard: str = SHARD) -> dict:
    cur = db.execute(
        "SELECT checkpoint_sequence, checkpoint_sub_sequence, records_stored, "
        "duplicates_dropped, records_rejected, millis_behind_latest, "
        "last_commit_at FROM shard_leases "
        "WHERE stream_name = %s AND shard_id = %s",
        (STREAM, shard),
    )
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def meta(seq: str = "1000", sub: int = 0, arrived=ARRIVED,
         shard: str = SHARD) -> RecordMeta:
    return RecordMeta(shard, seq, sub, arrived)


def sample(load_id: str, **fields) -> tuple:
    """A load sample in SAMPLE_COLUMNS order; raw_payload made from it."""
    values = {
        "load_id": load_id,
        "name": load_id.upper(),
        "type": "hvac",
        "capacity_kw": 4.0,
        "current_power_kw": 1.25,
        "shed_capability_kw": 0.5,
        "enabled": True,
        "priority": 2,
    }
    values.update(fields)
    if "raw_payload" not in values:
        values["raw_payload"] = orjson.dumps(
            {"loadId": load_id, "priority": values["priority"]}
        ).decode()
    return tuple(values[c] for c in SAMPLE_COLUMNS)


def reading(ven_id: str, at: datetime | int = 0, samples=None,
            record: RecordMeta | None = None, **fields) -> Reading:
    """A reading at ``at`` (a datetime, or seconds after T0)."""
    if isinstance(at, int):
        at = T0 + timedelta(seconds=at)
    values = {
        "used_power_kw": 3.18,
        "shed_power_kw": 0.75,
        "requested_reduction_kw": 1.0,
        "baseline_power_kw": 3.93,
        "event_id": "evt-a",
        "battery_soc": 0.61,
    }
    values.update(fields)
    if samples is None:
        samples = [sample("hvac1"), sample("ev1", priority=3)]
    raw = values.pop("raw_payload", None) or orjson.dumps(
        {"venId": ven_id, "timestamp": at.timestamp(), **values}
    ).decode()
    return Reading(ven_id=ven_id, timestamp=at, raw_payload=raw,
                   samples=samples, meta=record or meta(), **values)


def batch(lease: LeaseToken, items, seq: str = "1000", sub: int = 0,
          lag: int | None = None) -> Batch:
    return Batch(lease, list(items), Checkpoint(seq, sub), lag)


def count(db, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def note_calls(monkeypatch, module, name: str, note) -> list:
    """Replace ``module.name(cur, items)`` by a wrapper that appends
    ``note(items)`` to the returned list, then calls the real one."""
    calls = []
    real = getattr(module, name)

    def noted(cur, items):
        calls.append(note(items))
        return real(cur, items)

    monkeypatch.setattr(module, name, noted)
    return calls
