"""Text for people and JSON for scripts, from the status dataclasses.

Tables are plain fixed-width columns, so they survive ``less``, ``grep`` and
a narrow terminal scrolled sideways. Long values (sequence numbers, ECS task
ARNs) are shortened in tables only; ``--json`` carries them whole.
"""

from collections.abc import Sequence
from datetime import datetime

import orjson

from worker.kinesis.selector import HASH_SPACE
from worker.ops.model import ENDED, LAG_LIVE, LAG_RECORDED, StreamStatus

# Sequence numbers are 56 digits; the tail tells neighbouring checkpoints
# apart, which is what a person compares. --json shows them whole.
SEQUENCE_TAIL = 12
# Worker ids can be ECS task ARNs (80+ characters); their tail is the
# task id, which is what tells two tasks apart.
OWNER_WIDTH = 28

NONE = "-"


def to_json(status: StreamStatus) -> str:
    """The whole status as JSON (datetimes as RFC 3339, UTC)."""
    return orjson.dumps(status, option=orjson.OPT_INDENT_2).decode()


def duration(seconds: float | None) -> str:
    """12s, 3m05s, 2h10m, 4d03h; negative durations read as "ago"."""
    if seconds is None:
        return NONE
    if seconds < 0:
        return duration(-seconds) + " ago"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def lag(millis: int | None, source: str | None = None) -> str:
    if millis is None:
        return NONE
    text = f"{millis}ms" if millis < 1000 else duration(millis / 1000)
    # A recorded figure is only as fresh as the last commit: mark it.
    return text + ("*" if source == LAG_RECORDED else "")


def sequence(value: str | None) -> str:
    if value is None:
        return NONE
    if len(value) <= SEQUENCE_TAIL + 1:
        return value
    return "…" + value[-SEQUENCE_TAIL:]


def shorten(value: str | None, width: int = OWNER_WIDTH) -> str:
    if value is None:
        return NONE
    return value if len(value) <= width else "…" + value[-(width - 1):]


def moment(value: datetime | None) -> str:
    if value is None:
        return NONE
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def hash_share(start: str, end: str) -> str:
    """A hash range as percentages of the key space, e.g. 0.0-50.0%."""
    low = 100 * int(start) / HASH_SPACE
    high = 100 * (int(end) + 1) / HASH_SPACE
    return f"{low:.1f}-{high:.1f}%"


def table(header: Sequence[str], rows: Sequence[Sequence[str]],
          right: frozenset[int] = frozenset()) -> list[str]:
    """Fixed-width columns; column numbers in ``right`` align right."""
    widths = [max(len(str(cell)) for cell in column)
              for column in zip(header, *rows)]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).rjust(w) if i in right else str(cell).ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def shard_map(shards) -> list[str]:
    """Shard id, hash range and parents of ``shards`` (anything with
    shard_id, starting/ending_hash_key and parent_shard_ids)."""
    ordered = sorted(shards, key=lambda s: int(s.starting_hash_key))
    rows = [(s.shard_id, hash_share(s.starting_hash_key, s.ending_hash_key),
             s.starting_hash_key, s.ending_hash_key,
             ", ".join(s.parent_shard_ids) or NONE) for s in ordered]
    return table(("SHARD", "KEYS", "STARTING HASH KEY", "ENDING HASH KEY",
                  "PARENTS"), rows, right=frozenset({2, 3}))


def to_text(status: StreamStatus) -> str:
    t = status.totals
    where = status.kinesis_endpoint or "AWS"
    stream_state = status.stream_status or "unknown (Kinesis not reached)"
    lines = [
        f"stream {status.stream_name} at {where}: {stream_state}; "
        f"{t.open_shards} open, {t.ended_shards} ended shard(s); "
        f"schema {status.schema}; checked {moment(status.checked_at)}",
        _lag_note(status),
        _newest_line(t),
        "",
    ]
    if not status.shards:
        lines += [f"no shards: no worker has listed {status.stream_name} "
                  "yet, and Kinesis listed none", ""]
    else:
        lines += _shard_lines(status)
    if not status.workers:
        lines.append("no workers registered for this stream")
    else:
        lines += table(
            ("WORKER", "SELECTOR", "HEARTBEAT", "LIVE", "LEASES", "EXPIRED"),
            [(w.worker_id, w.selector or NONE, _heartbeat(w.heartbeat_age_s),
              "yes" if w.live else "no", w.leases_held, w.leases_expired)
             for w in status.workers],
            right=frozenset({2, 4, 5}))
    lines += [
        "",
        f"totals: {t.records_stored} stored, {t.duplicates_dropped} "
        f"duplicates dropped, {t.records_rejected} rejected; "
        f"{t.leases_held} lease(s) held by {t.live_workers} live worker(s); "
        f"largest lag {lag(t.max_millis_behind)}",
    ]
    lines += [f"WARNING: {warning}" for warning in status.warnings]
    return "\n".join(lines)


def _newest_line(totals) -> str:
    if totals.newest_reading_at is None:
        return "newest stored reading: none"
    return (f"newest stored reading: {moment(totals.newest_reading_at)} "
            f"({duration(totals.newest_reading_age_s)} old)")


def _shard_lines(status: StreamStatus) -> list[str]:
    lines = table(
        ("SHARD", "STATE", "OWNER", "LEASE", "CHECKPOINT", "LAG",
         "COMMITTED", "STORED", "DUPLICATES", "REJECTED", "NEWEST READING",
         "AGE", "VENS"),
        [(s.shard_id, _state(s), shorten(s.owner),
          duration(s.lease_expires_in_s),
          _checkpoint(s), lag(s.millis_behind_latest, s.lag_source),
          _ago(status, s.last_commit_at), s.records_stored,
          s.duplicates_dropped, s.records_rejected,
          moment(s.newest_reading_at), duration(s.newest_reading_age_s),
          s.vens_latest_here)
         for s in status.shards],
        right=frozenset({3, 5, 6, 7, 8, 9, 11, 12}))
    return [*lines, "", *shard_map(status.shards), ""]


def _lag_note(status: StreamStatus) -> str:
    sources = {s.lag_source for s in status.shards if s.lag_source}
    if sources == {LAG_LIVE}:
        return ("lag: MillisBehindLatest measured now from Kinesis at each "
                "shard's checkpoint")
    if LAG_LIVE in sources:
        return ("lag: measured now from Kinesis at each shard's checkpoint; "
                "* = as recorded by the worker at its last commit")
    return ("lag: * = MillisBehindLatest as recorded by the worker at its "
            "last commit (not measured now)")


def _state(shard) -> str:
    # A closed shard not yet ended is a parent still being drained.
    if shard.closed and shard.state != ENDED:
        return shard.state + " (closed)"
    return shard.state


def _checkpoint(shard) -> str:
    if shard.checkpoint is None and shard.pending_reset_to is not None:
        # An operator's reset, or a LATEST start fixed at the first lease;
        # either way the next reader starts at this time.
        return "starts at " + moment(shard.pending_reset_to)
    return sequence(shard.checkpoint)


def _ago(status: StreamStatus, when: datetime | None) -> str:
    if when is None:
        return NONE
    return duration((status.checked_at - when).total_seconds()) + " ago"


def _heartbeat(age: float | None) -> str:
    return NONE if age is None else duration(age) + " ago"
