"""Judgements for ``status`` over what the database and Kinesis said: each
shard's state, which lag to show, per-worker counts, totals and warnings.
Pure functions, no I/O: every case is a quick test.
"""

from collections.abc import Iterable

from worker.kinesis.reader import StartPosition
from worker.leases.model import SHARD_END
from worker.ops.leases_view import Snapshot
from worker.ops.model import (
    ENDED,
    EXPIRED,
    FREE,
    LAG_LIVE,
    LAG_RECORDED,
    READING,
    UNLEASED,
    WAITING,
    ShardStatus,
    StreamStatus,
    Totals,
    WorkerStatus,
)
from worker.ops.positions import next_start
from worker.ops.stream_view import STREAM_NOT_FOUND, StreamView

# Share of one shard above which traffic counts as concentrated. With a key
# that varies (${venId} over a fleet, or ${newuuid()}) shards' shares differ
# by a few percent; 80% on one of two or more open shards is far beyond
# chance and means the key barely varies.
CONCENTRATION_SHARE = 0.8

# Too few records say nothing about their spread; a few hundred do, and a
# fresh stream reaches that within seconds of traffic.
CONCENTRATION_MIN_RECORDS = 200

# With ${venId} keys, eight VENs all land on one of two shards with a chance
# under 1%; with fewer, a lopsided spread can be plain bad luck and the
# warning says so.
CONCENTRATION_MIN_VENS = 8

PARTITION_KEY_ADVICE = (
    "A constant partition key in the IoT rule (as in production today) "
    "sends every record to one shard, so adding shards changes nothing. "
    "Set the rule's partition key to ${venId} (each VEN keeps its order) "
    "or ${newuuid()}, then scale.")


def _parents_done(row: dict, rows_by_id: dict[str, dict]) -> bool:
    # The balancer's rule (leases/balance.py): a parent is done when it
    # ended or has no lease row any more (it left the stream).
    return all(parent not in rows_by_id
               or rows_by_id[parent]["checkpoint_sequence"] == SHARD_END
               for parent in row["parent_shard_ids"])


def shard_state(row: dict | None, rows_by_id: dict[str, dict]) -> str:
    if row is None:
        return UNLEASED
    if row["checkpoint_sequence"] == SHARD_END:
        return ENDED
    if row["owner"] is not None:
        live = (row["lease_expires_in_s"] or 0) > 0
        return READING if live else EXPIRED
    if not _parents_done(row, rows_by_id):
        return WAITING
    return FREE


def start_positions(snapshot: Snapshot, view: StreamView,
                    settings) -> dict[str, StartPosition]:
    """Where the next reader of each shard Kinesis lists would start, for
    shards not ended."""
    starts = {}
    for row in snapshot.leases:
        if row["checkpoint_sequence"] != SHARD_END:
            starts[row["shard_id"]] = next_start(
                row["checkpoint_sequence"], row["reset_to_timestamp"],
                bool(row["parent_shard_ids"]), settings)
    for shard_id, shard in view.shards.items():
        if shard_id not in starts and shard.ending_sequence_number is None:
            starts[shard_id] = next_start(None, None,
                                          bool(shard.parent_shard_ids),
                                          settings)
    return {shard_id: start for shard_id, start in starts.items()
            if shard_id in view.shards}


def _closed(row: dict | None, shard_id: str, view: StreamView) -> bool | None:
    if row is not None and row["checkpoint_sequence"] == SHARD_END:
        return True
    shard = view.shards.get(shard_id)
    if shard is not None:
        return shard.ending_sequence_number is not None
    return None


def build_shard(shard_id: str, row: dict | None, snapshot: Snapshot,
                view: StreamView, rows_by_id: dict[str, dict]) -> ShardStatus:
    info = view.shards.get(shard_id)
    source = row if row is not None else {
        "parent_shard_ids": list(info.parent_shard_ids),
        "starting_hash_key": info.starting_hash_key,
        "ending_hash_key": info.ending_hash_key,
    }
    shard = ShardStatus(
        shard_id=shard_id,
        parent_shard_ids=list(source["parent_shard_ids"]),
        starting_hash_key=source["starting_hash_key"],
        ending_hash_key=source["ending_hash_key"],
        state=shard_state(row, rows_by_id),
        closed=_closed(row, shard_id, view),
    )
    if row is not None:
        shard.owner = row["owner"]
        shard.lease_counter = row["lease_counter"]
        if row["owner"] is not None:
            shard.lease_expires_in_s = row["lease_expires_in_s"]
        shard.checkpoint = row["checkpoint_sequence"]
        if row["checkpoint_sequence"] is None:
            shard.pending_reset_to = row["reset_to_timestamp"]
        shard.recorded_millis_behind = row["millis_behind_latest"]
        shard.last_commit_at = row["last_commit_at"]
        shard.records_stored = row["records_stored"]
        shard.duplicates_dropped = row["duplicates_dropped"]
        shard.records_rejected = row["records_rejected"]
    _choose_lag(shard, view)
    newest = snapshot.newest_by_shard.get(shard_id)
    if newest is not None:
        shard.newest_reading_at, shard.vens_latest_here = newest
        shard.newest_reading_age_s = _age(snapshot, shard.newest_reading_at)
    return shard


def _choose_lag(shard: ShardStatus, view: StreamView) -> None:
    """The live figure when Kinesis gave one, else the worker's."""
    shard.live_millis_behind = view.live_lag.get(shard.shard_id)
    if shard.live_millis_behind is not None:
        shard.millis_behind_latest = shard.live_millis_behind
        shard.lag_source = LAG_LIVE
    elif shard.recorded_millis_behind is not None:
        shard.millis_behind_latest = shard.recorded_millis_behind
        shard.lag_source = LAG_RECORDED


def _age(snapshot: Snapshot, moment) -> float | None:
    if moment is None:
        return None
    return (snapshot.now - moment).total_seconds()


def build_workers(snapshot: Snapshot, shards: Iterable[ShardStatus],
                  live_within_s: float) -> list[WorkerStatus]:
    """Every worker of the stream's table, and any lease owner missing from
    it; a worker is live when it heartbeat within ``live_within_s``."""
    workers = {
        row["worker_id"]: WorkerStatus(
            worker_id=row["worker_id"], selector=row["shard_selector"],
            heartbeat_age_s=row["heartbeat_age_s"],
            live=row["heartbeat_age_s"] < live_within_s)
        for row in snapshot.workers
    }
    for shard in shards:
        if shard.owner is None or shard.state == ENDED:
            continue
        worker = workers.setdefault(shard.owner, WorkerStatus(
            worker_id=shard.owner, selector=None, heartbeat_age_s=None,
            live=False))
        if shard.state == READING:
            worker.leases_held += 1
        else:
            worker.leases_expired += 1
    return sorted(workers.values(), key=lambda w: w.worker_id)


def is_open(shard: ShardStatus) -> bool:
    """Open in the stream: records can still arrive."""
    return shard.state != ENDED and shard.closed is not True


def build_totals(snapshot: Snapshot, shards: list[ShardStatus],
                 workers: list[WorkerStatus]) -> Totals:
    lags = [s.millis_behind_latest for s in shards
            if s.state != ENDED and s.millis_behind_latest is not None]
    return Totals(
        open_shards=sum(1 for s in shards if is_open(s)),
        ended_shards=sum(1 for s in shards if s.state == ENDED),
        records_stored=sum(s.records_stored for s in shards),
        duplicates_dropped=sum(s.duplicates_dropped for s in shards),
        records_rejected=sum(s.records_rejected for s in shards),
        live_workers=sum(1 for w in workers if w.live),
        leases_held=sum(w.leases_held for w in workers),
        max_millis_behind=max(lags, default=None),
        newest_reading_at=snapshot.newest_overall,
        newest_reading_age_s=_age(snapshot, snapshot.newest_overall),
    )


# -- warnings ---------------------------------------------------------------


def concentration_warning(shards: Iterable[ShardStatus]) -> str | None:
    """A warning when one open shard carries nearly all the traffic, by
    records stored or by the VENs whose newest reading it delivered."""
    open_shards = [s for s in shards if is_open(s)]
    if len(open_shards) < 2:
        return None
    records = sum(s.records_stored for s in open_shards)
    vens = sum(s.vens_latest_here for s in open_shards)
    top = max(open_shards, key=lambda s: (s.records_stored,
                                          s.vens_latest_here))
    by_records = (records >= CONCENTRATION_MIN_RECORDS
                  and top.records_stored > CONCENTRATION_SHARE * records)
    by_vens = (vens >= CONCENTRATION_MIN_VENS
               and top.vens_latest_here > CONCENTRATION_SHARE * vens)
    if not (by_records or by_vens):
        return None

    text = f"traffic is concentrated on {top.shard_id}: "
    if records:
        share = round(100 * top.records_stored / records)
        text += (f"it holds {share}% of the records stored on the "
                 f"{len(open_shards)} open shards")
    if vens:
        text += ("; " if records else "") + (
            f"the newest reading of {top.vens_latest_here} of {vens} VENs "
            "came through it")
    text += ". " + PARTITION_KEY_ADVICE
    if 0 < vens < CONCENTRATION_MIN_VENS:
        text += (f" (With only {vens} VENs reporting, an uneven spread can "
                 "also be chance.)")
    return text


def stream_warnings(status: StreamStatus, view: StreamView, snapshot: Snapshot,
                    settings) -> list[str]:
    found = []
    where = settings.kinesis_endpoint or "AWS"
    if not view.reachable:
        found.append(f"Kinesis not reachable at {where} ({view.error}); lag "
                     "is as recorded by the workers at their last commit")
    elif view.status == STREAM_NOT_FOUND:
        found.append(f"stream {status.stream_name!r} does not exist at "
                     f"{where}: check STREAM_NAME and KINESIS_ENDPOINT")
    elif view.status and view.status != "ACTIVE":
        found.append(f"stream is {view.status}: a reshard or change is in "
                     "progress")
    if view.lag_errors:
        first = next(iter(sorted(view.lag_errors.items())))
        found.append(f"live lag not measured for {len(view.lag_errors)} "
                     f"shard(s) ({first[0]}: {first[1]}); their lag is as "
                     "recorded by the workers")

    unleased = [s.shard_id for s in status.shards if s.state == UNLEASED]
    if unleased:
        found.append(
            f"{len(unleased)} open shard(s) have no lease row yet "
            f"({', '.join(unleased)}): no worker has listed the stream since "
            "they appeared (workers list it every "
            f"{settings.discovery_interval_s:g} s)")
    if view.reachable:
        unknown = [row["shard_id"] for row in snapshot.leases
                   if row["shard_id"] not in view.shards
                   and row["checkpoint_sequence"] != SHARD_END]
        if unknown:
            found.append(
                f"{len(unknown)} lease row(s) name shards Kinesis does not "
                f"list ({', '.join(unknown)}): was the stream deleted and "
                "created again under the same name?")

    reading_needed = any(s.state != ENDED for s in status.shards)
    if reading_needed and status.totals.live_workers == 0:
        found.append(
            "no worker has sent a heartbeat within "
            f"{settings.lease_duration_s:g} s: nothing is reading the stream")
    concentrated = concentration_warning(status.shards)
    if concentrated:
        found.append(concentrated)
    return found
