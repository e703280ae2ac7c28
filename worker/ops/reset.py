"""``ven-worker reset``: rewind one shard, or every shard of the stream, to a
time or to a sequence number, for replay.

Replay is safe because a reading already stored is dropped as a duplicate
(and counted on the lease row). Moving forward is not: records between the
checkpoint and the new position would never be stored. So before anything
changes, Kinesis is asked for each shard's first unread record, and a
position past it is refused.

The lease package does the move (``LeaseTable.reset``): it frees the lease
and moves its counter, so a running worker's in-flight batch fails its fence
and whoever takes the shard next starts from the new position.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from worker.db.connect import connect
from worker.errors import ConfigError, first_line
from worker.kinesis.client import KinesisClient
from worker.leases import SHARD_END, Lease, LeaseTable
from worker.ops.leases_view import check_tables
from worker.ops.positions import next_start
from worker.ops.render import moment, sequence, shorten, table
from worker.ops.stream_view import (
    KINESIS_FAILURES,
    one_attempt_client,
    probe,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """What to reset (a shard id, or None for all) and where to."""

    shard_id: str | None
    after_sequence: str | None
    at_timestamp: datetime | None

    def describe(self) -> str:
        if self.after_sequence is not None:
            return f"after sequence number {self.after_sequence}"
        return f"records that arrived at or after {moment(self.at_timestamp)}"


def check_target(shard: str | None, all_shards: bool,
                 to_timestamp: datetime | None,
                 to_sequence: str | None) -> Target:
    """The reset asked for, or ConfigError naming what does not make sense."""
    if (shard is None) == (not all_shards):
        raise ConfigError("reset needs exactly one of --shard ID or --all")
    if (to_timestamp is None) == (to_sequence is None):
        raise ConfigError(
            "reset needs exactly one of --to-timestamp or --to-sequence")
    if to_sequence is not None:
        if shard is None:
            raise ConfigError("reset --to-sequence needs --shard: a sequence "
                              "number belongs to one shard")
        if not (to_sequence.isascii() and to_sequence.isdigit()):
            raise ConfigError(f"reset: {to_sequence!r} is not a sequence "
                              "number (decimal digits)")
    if to_timestamp is not None:
        if to_timestamp.tzinfo is None:
            raise ConfigError("reset: the time needs a zone (e.g. ...Z)")
        now = datetime.now(timezone.utc)
        if to_timestamp > now:
            raise ConfigError(
                f"reset: {moment(to_timestamp)} is in the future (now is "
                f"{moment(now)}); reset rewinds, and Kinesis refuses to read "
                "from a future time")
    return Target(shard, to_sequence, to_timestamp)


def _targeted(leases: list[Lease], target: Target, stream: str,
              schema: str) -> list[Lease]:
    if not leases:
        raise ConfigError(
            f"reset: stream {stream} has no lease rows in schema {schema}; "
            "nothing to reset (has a worker run on it? check STREAM_NAME "
            "and PG_SCHEMA)")
    if target.shard_id is None:
        return leases
    chosen = [lease for lease in leases if lease.shard_id == target.shard_id]
    if not chosen:
        known = ", ".join(lease.shard_id for lease in leases)
        raise ConfigError(f"reset: stream {stream} has no shard "
                          f"{target.shard_id} (its shards: {known})")
    return chosen


def check_no_skip(client: KinesisClient, stream: str, leases: list[Lease],
                  target: Target, settings) -> None:
    """Refuse a position that would skip records never stored. Asks Kinesis
    for each shard's first unread record; ended shards have none."""
    skipped = []
    for lease in leases:
        if lease.checkpoint_sequence == SHARD_END:
            continue
        start = next_start(lease.checkpoint_sequence,
                           lease.reset_to_timestamp,
                           bool(lease.parent_shard_ids), settings)
        page = _ask(lambda: probe(client, stream, lease.shard_id, start),
                    lease.shard_id, settings)
        if not page.records:
            continue
        first = page.records[0]
        if target.after_sequence is not None:
            if int(first.sequence_number) <= int(target.after_sequence):
                skipped.append(f"{lease.shard_id} has not stored record "
                               f"{first.sequence_number} yet")
        elif first.arrived_at is not None \
                and first.arrived_at < target.at_timestamp:
            skipped.append(f"{lease.shard_id} has not stored the record "
                           f"that arrived at {moment(first.arrived_at)} yet")
    if skipped:
        raise ConfigError(
            f"reset to {target.describe()} would skip records never stored: "
            f"{'; '.join(skipped)}. Pick an earlier position; nothing was "
            "reset")


def check_sequence_exists(client: KinesisClient, stream: str, shard_id: str,
                          sequence_number: str, settings) -> None:
    """A sequence number Kinesis does not know would leave the shard's
    reader failing on every start; refuse it now instead."""
    start = next_start(sequence_number, None, False, settings)
    _ask(lambda: probe(client, stream, shard_id, start), shard_id, settings,
         what=f"sequence number {sequence_number} in")


def _ask(call, shard_id: str, settings, what: str = "the position of"):
    try:
        return call()
    except KINESIS_FAILURES as exc:
        where = settings.kinesis_endpoint or "AWS"
        raise ConfigError(
            f"reset: Kinesis at {where} could not confirm {what} {shard_id} "
            f"({first_line(exc)}); nothing was reset") from exc


def reset(settings, shard: str | None = None, all_shards: bool = False,
          to_timestamp: datetime | None = None,
          to_sequence: str | None = None,
          kinesis: KinesisClient | None = None) -> int:
    """Rewind shard checkpoints; prints what moved. ``kinesis`` may be given
    (tests pass one); by default a client that tries each call once."""
    target = check_target(shard, all_shards, to_timestamp, to_sequence)
    stream, schema = settings.stream_name, settings.pg_schema
    with connect(settings.database_url, schema, autocommit=True) as conn:
        check_tables(conn, settings.database_url, schema)
        leases = LeaseTable(conn, stream, settings.lease_duration_s)
        before = _targeted(leases.list(), target, stream, schema)

        client = kinesis or one_attempt_client(settings)
        if target.after_sequence is not None:
            check_sequence_exists(client, stream, target.shard_id,
                                  target.after_sequence, settings)
        check_no_skip(client, stream, before, target, settings)

        moved = leases.reset(target.shard_id,
                             after_sequence=target.after_sequence,
                             at_timestamp=target.at_timestamp)
    log.info("stream %s: reset %s to %s", stream, ", ".join(moved),
             target.describe())
    print_reset(stream, target, [lease for lease in before
                                 if lease.shard_id in moved])
    return 0


def print_reset(stream: str, target: Target, moved: list[Lease]) -> None:
    print(f"reset {len(moved)} shard(s) of stream {stream} to "
          f"{target.describe()}:")
    rows = [(lease.shard_id, sequence(lease.checkpoint_sequence),
             shorten(lease.owner)) for lease in moved]
    for line in table(("SHARD", "CHECKPOINT WAS", "OWNER WAS"), rows):
        print("  " + line)
    print("Running workers drop these shards at their next lease renewal; "
          "whoever takes one next reads from the new position. Readings "
          "already stored are counted as duplicates, not stored again.")
