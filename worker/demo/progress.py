"""Live progress: what the workers have committed and how far behind each
shard is, one line every few seconds.

Counts and owners come from the lease table on every line (``read_shards``,
one cheap query). Lag comes from ``LiveLag`` when it has measured it, else
from the lease table, where it is as of each shard's last commit.
"""

from dataclasses import dataclass

import psycopg

from worker.demo.tally import Sent

_SHARDS_SQL = """
SELECT shard_id,
       CASE WHEN lease_expires_at > now() THEN owner END,
       records_stored, duplicates_dropped, records_rejected,
       millis_behind_latest
FROM shard_leases
WHERE stream_name = %s
ORDER BY shard_id
"""


@dataclass(frozen=True, slots=True)
class ShardRow:
    shard_id: str
    owner: str | None  # None when nobody holds a live lease
    stored: int
    duplicates: int
    rejected: int
    millis_behind: int | None  # as of the shard's last commit

    @property
    def accounted(self) -> int:
        return self.stored + self.duplicates + self.rejected


def read_shards(conn: psycopg.Connection, stream: str) -> list[ShardRow]:
    """Every shard of ``stream`` with its owner, counts and recorded lag."""
    return [ShardRow(*row) for row in conn.execute(_SHARDS_SQL, (stream,))]


def accounted(shards: list[ShardRow]) -> int:
    """Records stored, counted as duplicates, or rejected, on all shards."""
    return sum(shard.accounted for shard in shards)


def owners(shards: list[ShardRow]) -> dict[str, int]:
    """Live leases per worker."""
    held: dict[str, int] = {}
    for shard in shards:
        if shard.owner:
            held[shard.owner] = held.get(shard.owner, 0) + 1
    return dict(sorted(held.items()))


def short_shard(shard_id: str) -> str:
    """``shardId-000000000003`` -> ``3``."""
    number = shard_id.rpartition("-")[2].lstrip("0")
    return number or "0"


HEADER = (f"{'elapsed':>8} {'sent':>8} {'stored':>8} {'stored/s':>8} "
          f"{'dup':>5} {'rej':>5}  lag ms by shard         leases")


class ProgressLine:
    """Formats one progress line; remembers the last one for the rate."""

    def __init__(self):
        self._last: tuple[float, int] | None = None

    def format(self, elapsed_s: float, sent: Sent, shards: list[ShardRow],
               live_lag: dict[str, int | None] | None = None) -> str:
        stored = sum(s.stored for s in shards)
        rate = "-"
        if self._last is not None and elapsed_s > self._last[0]:
            per_s = (stored - self._last[1]) / (elapsed_s - self._last[0])
            rate = f"{per_s:,.0f}"
        self._last = (elapsed_s, stored)
        live_lag = live_lag or {}
        lag = " ".join(
            f"{short_shard(s.shard_id)}:"
            f"{_lag(live_lag.get(s.shard_id, s.millis_behind))}"
            for s in shards) or "-"
        held = " ".join(f"{owner}:{n}" for owner, n in owners(shards).items())
        return (f"{elapsed_s:>7.0f}s {sent.total:>8,} {stored:>8,} "
                f"{rate:>8} {sum(s.duplicates for s in shards):>5,} "
                f"{sum(s.rejected for s in shards):>5,}  {lag:<23} "
                f"{held or '-'}")


def _lag(millis: int | None) -> str:
    return "-" if millis is None else f"{millis:,}"
