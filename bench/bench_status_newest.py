"""How `status` should find the newest stored reading of each shard: four
queries timed on the same table in one run, reported as ratios.

Run:  .venv/bin/python bench/bench_status_newest.py [--readings 200000]

- per-shard max: ``max("timestamp") WHERE shard_id = ...``, once per shard
  (every partition scanned once per shard);
- grouped max: one ``GROUP BY shard_id`` over the whole table;
- last-day max: the grouped max bounded to one day before the newest reading
  (from ven_last_seen), so only the newest day's partitions are scanned;
- via last-seen: each VEN's newest reading (from ven_last_seen) joined
  to ven_telemetry, grouped by the shard that delivered it; as a plain join
  the planner hashes the whole table, so
- via last-seen, lateral: the same as one primary-key probe per VEN, which
  run-time partition pruning sends to one partition each. Its cost follows
  the fleet's size, not the history's length.

Seen here (three runs, 200,000 readings, shared 2-core machine): the
lateral probe 3-9 ms, 33-104x the per-shard max and 2.5-5x the last-day
max; at 1,000,000 readings 24 ms against 134 ms for the last-day max. All
five gave the same answer, because each VEN's readings stay on one shard
here (as with partition key ${venId}). `status` uses the lateral probe
(worker/ops/leases_view.py says where its answer is approximate).

The table gets synthetic readings spread over DAYS daily partitions, round
robin over SHARDS shards, with a payload of realistic size, then ANALYZE.
It lives in a freshly migrated schema, dropped afterwards.
"""

import argparse
import statistics
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import psycopg

from worker.db import migrate
from worker.db.connect import connect, mask_url
from worker.sink.partitions import create_partitions

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"

# Three weeks of history: enough that a full scan visibly costs more than a
# day's partition, as it does (far more so) after months in production.
DAYS = 21
SHARDS = 4
VENS = 500
FIRST_DAY = date(2025, 12, 1)
ROUNDS = 7  # the median of seven runs hides a stray slow one

SHARD_IDS = [f"shardId-{n:012d}" for n in range(SHARDS)]

_FILL_SQL = """
INSERT INTO ven_telemetry
    (ven_id, "timestamp", used_power_kw, raw_payload, shard_id,
     sequence_number, arrived_at)
SELECT 'ven-' || (g %% %(vens)s),
       %(start)s::timestamptz
           + make_interval(secs => (g / %(vens)s) * %(step)s),
       1.5,
       jsonb_build_object('venId', 'ven-' || (g %% %(vens)s),
                          'usedPowerKw', 1.5, 'loads',
                          jsonb_build_array(jsonb_build_object(
                              'loadId', 'hvac1', 'currentPowerKw', 0.5,
                              'name', 'Heat pump, upstairs'))),
       (%(shards)s::text[])[1 + (g %% %(n_shards)s)],
       lpad(g::text, 56, '0'),
       now()
FROM generate_series(0, %(count)s - 1) AS g
"""

_LAST_SEEN_SQL = """
INSERT INTO ven_last_seen (ven_id, last_reading_at, last_seen_at)
SELECT ven_id, max("timestamp"), now() FROM ven_telemetry GROUP BY ven_id
"""

PER_SHARD = 'SELECT max("timestamp") FROM ven_telemetry WHERE shard_id = %s'

GROUPED = """
SELECT shard_id, max("timestamp") FROM ven_telemetry
WHERE shard_id = ANY(%s) GROUP BY shard_id
"""

NEWEST_OVERALL = "SELECT max(last_reading_at) FROM ven_last_seen"

LAST_DAY = """
SELECT shard_id, max("timestamp") FROM ven_telemetry
WHERE shard_id = ANY(%s) AND "timestamp" >= %s GROUP BY shard_id
"""

VIA_LAST_SEEN = """
SELECT t.shard_id, max(t."timestamp")
FROM ven_last_seen s
JOIN ven_telemetry t
  ON t.ven_id = s.ven_id AND t."timestamp" = s.last_reading_at
WHERE t.shard_id = ANY(%s)
GROUP BY t.shard_id
"""

# LIMIT 1 makes the planner probe per VEN instead of hashing the table.
VIA_LAST_SEEN_LATERAL = """
SELECT t.shard_id, max(t."timestamp")
FROM ven_last_seen s
CROSS JOIN LATERAL (
    SELECT shard_id, "timestamp" FROM ven_telemetry
    WHERE ven_id = s.ven_id AND "timestamp" = s.last_reading_at
    LIMIT 1) t
WHERE t.shard_id = ANY(%s)
GROUP BY t.shard_id
"""


def fill(conn: psycopg.Connection, readings: int) -> None:
    create_partitions(conn, [FIRST_DAY + timedelta(days=n)
                             for n in range(DAYS)])
    per_ven = readings // VENS
    step = DAYS * 86_400 // per_ven  # one VEN's readings span every day
    start = datetime.combine(FIRST_DAY, datetime.min.time(), timezone.utc)
    with conn.transaction():
        conn.execute(_FILL_SQL, dict(vens=VENS, start=start, step=step,
                                     shards=SHARD_IDS, n_shards=SHARDS,
                                     count=per_ven * VENS))
        conn.execute(_LAST_SEEN_SQL)
    conn.execute("ANALYZE ven_telemetry")
    conn.execute("ANALYZE ven_last_seen")


def per_shard(conn) -> dict:
    return {s: conn.execute(PER_SHARD, (s,)).fetchone()[0]
            for s in SHARD_IDS}


def grouped(conn) -> dict:
    return dict(conn.execute(GROUPED, (SHARD_IDS,)).fetchall())


def last_day(conn) -> dict:
    newest = conn.execute(NEWEST_OVERALL).fetchone()[0]
    since = newest - timedelta(days=1)
    return dict(conn.execute(LAST_DAY, (SHARD_IDS, since)).fetchall())


def via_last_seen(conn) -> dict:
    return dict(conn.execute(VIA_LAST_SEEN, (SHARD_IDS,)).fetchall())


def via_last_seen_lateral(conn) -> dict:
    return dict(conn.execute(VIA_LAST_SEEN_LATERAL, (SHARD_IDS,)).fetchall())


def median_ms(conn, query) -> tuple[float, dict]:
    found = query(conn)  # warm the cache first: status runs on a live table
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        query(conn)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--url", default=DEFAULT_URL)
    args = parser.parse_args()

    schema = "bench_status_" + uuid.uuid4().hex[:8]
    migrate.upgrade(args.url, schema)
    conn = connect(args.url, schema, autocommit=True)
    try:
        fill(conn, args.readings)
        count = conn.execute("SELECT count(*) FROM ven_telemetry").fetchone()
        print(f"{count[0]} readings over {DAYS} days, {SHARDS} shards, "
              f"{VENS} VENs at {mask_url(args.url)}")
        results = {name: median_ms(conn, query) for name, query in (
            ("per-shard max", per_shard), ("grouped max", grouped),
            ("last-day max", last_day), ("via last-seen", via_last_seen),
            ("lateral probe", via_last_seen_lateral))}
        base, truth = results["per-shard max"]
        for name, (ms, found) in results.items():
            same = "same answer" if found == truth else f"differs: {found}"
            print(f"{name:14} {ms:8.2f} ms  {base / ms:6.1f}x  ({same})")
    finally:
        conn.close()
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
