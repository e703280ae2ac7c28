"""``ven_last_seen``: the newest reading and arrival per VEN, only ever moving
forward, whatever order shards deliver readings in.

Only readings this batch stored count: last_reading_at must name a reading
that is in ven_telemetry, and a duplicate or a refused reading adds nothing
new. So a VEN that only ever resends the same reading does not look alive.
"""

from collections.abc import Iterable

import psycopg

from worker.records.model import Reading

# Rows go in ven_id order (sorted here and again by the server's collation)
# so two workers upserting overlapping VENs lock them in the same order and
# cannot deadlock. A reading with no arrival time counts as arriving now.
_UPSERT_SQL = """
INSERT INTO ven_last_seen AS s (ven_id, last_reading_at, last_seen_at)
SELECT v.ven_id, v.reading_at, COALESCE(v.seen_at, now())
FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[])
    AS v(ven_id, reading_at, seen_at)
ORDER BY v.ven_id
ON CONFLICT (ven_id) DO UPDATE SET
    last_reading_at = GREATEST(s.last_reading_at, EXCLUDED.last_reading_at),
    last_seen_at = GREATEST(s.last_seen_at, EXCLUDED.last_seen_at),
    updated_at = now()
"""


def newest_per_ven(readings: Iterable[Reading]) -> dict[str, list]:
    """ven_id -> [newest reading time, newest arrival time or None]."""
    newest: dict[str, list] = {}
    for r in readings:
        arrived = r.meta.arrived_at if r.meta else None
        seen = newest.get(r.ven_id)
        if seen is None:
            newest[r.ven_id] = [r.timestamp, arrived]
            continue
        if r.timestamp > seen[0]:
            seen[0] = r.timestamp
        if arrived is not None and (seen[1] is None or arrived > seen[1]):
            seen[1] = arrived
    return newest


def touch_last_seen(cur: psycopg.Cursor, stored: Iterable[Reading]) -> None:
    """Move each VEN's last-seen times to the newest of ``stored``."""
    newest = newest_per_ven(stored)
    if not newest:
        return
    ven_ids = sorted(newest)
    cur.execute(
        _UPSERT_SQL,
        (
            ven_ids,
            [newest[v][0] for v in ven_ids],
            [newest[v][1] for v in ven_ids],
        ),
    )
