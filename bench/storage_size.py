"""Storage: bytes PostgreSQL holds per stored reading (8 load samples), for
the partition sizes in docs/scaling.md.

Run:  .venv/bin/python bench/storage_size.py [--readings 50000]

Readings from bench/readings.py go through PostgresSink in batches of
10,000, as the worker stores them, into a fresh schema; then each table's
size with its indexes and TOAST (pg_total_relation_size, summed over the
daily partitions) is divided by the readings stored. Rows are VACUUMed
first, so the visibility map and free space map count as they would in a
settled partition.
"""

import argparse
import sys
from datetime import UTC, datetime

import psycopg

from readings import ven_id
from readings import reading as payload
from support import database_url, drop_schema, fresh_schema
from worker.db.connect import connect
from worker.records import RecordMeta, decode_record
from worker.sink import Batch, Checkpoint, LeaseToken, PostgresSink

COMMAND = ".venv/bin/python bench/storage_size.py"
BATCH = 10_000
STREAM, SHARD = "bench-storage", "shardId-000000000000"
TABLES = ("ven_telemetry", "ven_load_samples", "ven_last_seen",
          "shard_leases")


def load(url: str, schema: str, readings: int) -> None:
    with connect(url, schema, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO shard_leases (stream_name, shard_id, "
            "starting_hash_key, ending_hash_key, owner, lease_counter) "
            "VALUES (%s, %s, '0', '1', 'bench', 1)", (STREAM, SHARD))
    lease = LeaseToken(STREAM, SHARD, "bench", 1)
    sink = PostgresSink(connect(url, schema))
    arrived = datetime(2025, 12, 2, tzinfo=UTC)
    for first in range(0, readings, BATCH):
        items = [decode_record(payload(i), RecordMeta(
                     SHARD, f"{49_000_000_000 + i}", 0, arrived, ven_id(i)))
                 for i in range(first, min(first + BATCH, readings))]
        checkpoint = Checkpoint(items[-1].meta.sequence_number)
        sink.write(Batch(lease, items, checkpoint, 0))
    sink.close()


def sizes(url: str, schema: str) -> dict[str, int]:
    """Bytes per table, partitions included."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f'VACUUM (ANALYZE) "{schema}".{table}')
        found = {}
        for table in TABLES:
            found[table] = int(conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND (c.relname = %s OR c.oid IN ("
                "  SELECT inhrelid FROM pg_inherits i JOIN pg_class p "
                "  ON p.oid = i.inhparent WHERE p.relname = %s "
                "  AND p.relnamespace = n.oid))",
                (schema, table, table)).fetchone()[0])
    return found


def run(readings: int, url: str) -> dict:
    print(f"command: {COMMAND} --readings {readings}")
    schema = fresh_schema(url)
    try:
        load(url, schema, readings)
        found = sizes(url, schema)
        with psycopg.connect(url) as conn:
            stored = conn.execute(
                f'SELECT count(*) FROM "{schema}".ven_telemetry').fetchone()[0]
    finally:
        drop_schema(url, schema)
    if stored != readings:
        raise RuntimeError(f"{readings} readings written, {stored} stored")
    payload_bytes = sum(len(payload(i)) for i in range(0, readings, 97)) / \
        len(range(0, readings, 97))
    print(f"{stored:,} readings stored; payload about {payload_bytes:,.0f} "
          f"bytes each")
    for table, size in found.items():
        print(f"  {table:<18} {size / 2**20:9.1f} MiB  "
              f"{size / stored:7.0f} bytes per reading")
    data = found["ven_telemetry"] + found["ven_load_samples"]
    print(f"  readings + samples {data / 2**20:9.1f} MiB  "
          f"{data / stored:7.0f} bytes per reading "
          f"({data / stored / payload_bytes:.1f}x the payload)")
    return {"readings": stored, "bytes_per_reading": data / stored,
            "payload_bytes": payload_bytes, "tables": found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--url", default=database_url())
    args = parser.parse_args(argv)
    run(args.readings, args.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
