"""``ven-worker status``: per shard its owner, checkpoint, state, lag and
newest stored reading; per worker the leases it holds; warnings, among them
traffic pinned to one shard by a constant partition key.

The database is required (it is where leases and checkpoints live); Kinesis
is not: when it cannot be reached, status shows the lag the workers recorded
at their last commit and says so.
"""

import logging

from worker.db.connect import connect
from worker.kinesis.client import KinesisClient
from worker.ops import assess
from worker.ops.leases_view import check_tables, read_snapshot
from worker.ops.model import StreamStatus
from worker.ops.render import to_json, to_text
from worker.ops.stream_view import (
    STREAM_NOT_FOUND,
    measure_live_lag,
    one_attempt_client,
    read_stream,
)

log = logging.getLogger(__name__)


def collect_status(settings, kinesis: KinesisClient | None = None
                   ) -> StreamStatus:
    """Everything ``status`` shows, as data. ``kinesis`` may be given (tests
    pass one); by default a client that tries each call once."""
    stream = settings.stream_name
    with connect(settings.database_url, settings.pg_schema,
                 autocommit=True) as conn:
        check_tables(conn, settings.database_url, settings.pg_schema)
        snapshot = read_snapshot(conn, stream)

    client = kinesis or one_attempt_client(settings)
    view = read_stream(client, stream)
    if view.reachable:
        starts = assess.start_positions(snapshot, view, settings)
        measure_live_lag(client, view, stream, starts)

    rows_by_id = {row["shard_id"]: row for row in snapshot.leases}
    # Shards Kinesis lists but no lease row has yet: only open ones matter.
    unleased = sorted(
        shard_id for shard_id, info in view.shards.items()
        if shard_id not in rows_by_id and info.ending_sequence_number is None)
    shards = [assess.build_shard(shard_id, rows_by_id.get(shard_id),
                                 snapshot, view, rows_by_id)
              for shard_id in sorted([*rows_by_id, *unleased])]
    workers = assess.build_workers(snapshot, shards,
                                   settings.lease_duration_s)
    status = StreamStatus(
        stream_name=stream,
        schema=settings.pg_schema,
        checked_at=snapshot.now,
        kinesis_endpoint=settings.kinesis_endpoint,
        stream_status=view.status,
        kinesis_reachable=view.reachable,
        shards=shards,
        workers=workers,
        totals=assess.build_totals(snapshot, shards, workers),
    )
    status.warnings = assess.stream_warnings(status, view, snapshot, settings)
    for warning in status.warnings:
        log.debug("status of %s: %s", stream, warning)
    return status


def status(settings, as_json: bool = False) -> int:
    """Print the stream's status as a table, or as JSON for scripts."""
    collected = collect_status(settings)
    print(to_json(collected) if as_json else to_text(collected))
    # Scripts can tell a stream that is not there from a healthy one.
    return 1 if collected.stream_status == STREAM_NOT_FOUND else 0
