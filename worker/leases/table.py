"""The lease and worker tables, one short statement per operation.

The connection must be in autocommit: every method is its own transaction,
so no lease row stays locked between statements.

Every ownership change (take, steal, release, reset) is one UPDATE guarded by
the owner and ``lease_counter`` the caller last saw, and moves the counter.
The sink's commit holds the lease row ``FOR UPDATE`` while it stores a batch,
so such an UPDATE waits for that commit and then re-checks its guard: a
lease never changes hands under a batch that is being committed. Renewal
moves only ``lease_expires_at``. Every time is the database's ``now()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from worker.errors import ConfigError, TransientError
from worker.leases.model import SHARD_END, Lease, ShardLike

LEASE_COLUMNS = """
    shard_id, parent_shard_ids, starting_hash_key, ending_hash_key, owner,
    lease_counter,
    (lease_expires_at IS NULL OR lease_expires_at <= now()) AS expired,
    checkpoint_sequence, checkpoint_sub_sequence, reset_to_timestamp
"""

_ENSURE_ROWS = """
INSERT INTO shard_leases
    (stream_name, shard_id, parent_shard_ids, starting_hash_key,
     ending_hash_key)
SELECT %(stream)s, s.shard_id,
       ARRAY(SELECT jsonb_array_elements_text(s.parents)),
       s.start_key, s.end_key
FROM jsonb_to_recordset(%(shards)s)
     AS s(shard_id text, parents jsonb, start_key text, end_key text)
-- One order for every worker, so concurrent inserts of the same rows wait
-- on each other instead of deadlocking.
ORDER BY s.shard_id
ON CONFLICT (stream_name, shard_id) DO NOTHING
RETURNING shard_id
"""

_NEW_EXPIRY = "now() + make_interval(secs => %(duration)s)"

_TAKE = f"""
UPDATE shard_leases
SET owner = %(me)s, lease_counter = lease_counter + 1,
    lease_expires_at = {_NEW_EXPIRY}
WHERE stream_name = %(stream)s AND shard_id = %(shard)s
  AND lease_counter = %(counter)s
  AND owner IS NOT DISTINCT FROM %(owner)s
  AND (owner IS NULL OR owner = %(me)s
       OR lease_expires_at IS NULL OR lease_expires_at <= now())
  AND checkpoint_sequence IS DISTINCT FROM '{SHARD_END}'
RETURNING {LEASE_COLUMNS}
"""

_STEAL = f"""
UPDATE shard_leases
SET owner = %(me)s, lease_counter = lease_counter + 1,
    lease_expires_at = {_NEW_EXPIRY}
WHERE stream_name = %(stream)s AND shard_id = %(shard)s
  AND lease_counter = %(counter)s AND owner = %(owner)s
  AND checkpoint_sequence IS DISTINCT FROM '{SHARD_END}'
RETURNING {LEASE_COLUMNS}
"""

_RENEW = f"""
UPDATE shard_leases SET lease_expires_at = {_NEW_EXPIRY}
WHERE stream_name = %(stream)s AND shard_id = %(shard)s
  AND owner = %(me)s AND lease_counter = %(counter)s
RETURNING shard_id
"""

# A shard that has never been read holds no position, so a reader starting
# at LATEST would, after a crash before its first commit, start at a new
# LATEST and skip what arrived in between. Its first holder writes "now" as
# the shard's start, which the first commit clears like any reset. The
# margin covers a database clock a little ahead of Kinesis's: a few seconds
# of older records read once more cost nothing, a skipped one is lost.
_PIN_START = f"""
UPDATE shard_leases
SET reset_to_timestamp = now() - make_interval(secs => %(margin)s)
WHERE stream_name = %(stream)s AND shard_id = %(shard)s
  AND owner = %(me)s AND lease_counter = %(counter)s
  AND checkpoint_sequence IS NULL AND reset_to_timestamp IS NULL
RETURNING reset_to_timestamp
"""

_RELEASE = """
UPDATE shard_leases
SET owner = NULL, lease_expires_at = NULL, lease_counter = lease_counter + 1
WHERE stream_name = %(stream)s AND shard_id = %(shard)s
  AND owner = %(me)s AND lease_counter = %(counter)s
RETURNING lease_counter
"""

_RELEASE_ALL = """
UPDATE shard_leases
SET owner = NULL, lease_expires_at = NULL, lease_counter = lease_counter + 1
WHERE stream_name = %(stream)s AND owner = %(me)s
RETURNING shard_id, lease_counter
"""

_HEARTBEAT = """
INSERT INTO ingest_workers (worker_id, stream_name, shard_selector)
VALUES (%(me)s, %(stream)s, %(selector)s)
ON CONFLICT (worker_id) DO UPDATE
SET heartbeat_at = now(), stream_name = EXCLUDED.stream_name,
    shard_selector = EXCLUDED.shard_selector
"""

_LIVE_WORKERS = """
SELECT worker_id FROM ingest_workers
WHERE stream_name = %(stream)s AND shard_selector = %(selector)s
  AND heartbeat_at > now() - make_interval(secs => %(within)s)
ORDER BY worker_id
"""

_RESET_COLUMNS = """
    owner = NULL, lease_expires_at = NULL, lease_counter = lease_counter + 1,
    checkpoint_sub_sequence = 0
"""

_RESET_TO_SEQUENCE = f"""
UPDATE shard_leases
SET {_RESET_COLUMNS}, checkpoint_sequence = %(sequence)s,
    reset_to_timestamp = NULL
WHERE stream_name = %(stream)s AND shard_id = %(shard)s
RETURNING shard_id
"""

_RESET_TO_TIMESTAMP = f"""
UPDATE shard_leases
SET {_RESET_COLUMNS}, checkpoint_sequence = NULL,
    reset_to_timestamp = %(at)s
WHERE stream_name = %(stream)s
  AND (%(shard)s::text IS NULL OR shard_id = %(shard)s)
RETURNING shard_id
"""


class LeaseBusy(TransientError):
    """A lease row stayed locked (a commit in progress) past the lock wait;
    the statement changed nothing and can be tried again next cycle."""


def _lease(row) -> Lease:
    return Lease(
        shard_id=row[0],
        parent_shard_ids=tuple(row[1] or ()),
        starting_hash_key=row[2],
        ending_hash_key=row[3],
        owner=row[4],
        lease_counter=row[5],
        expired=row[6],
        checkpoint_sequence=row[7],
        checkpoint_sub_sequence=row[8],
        reset_to_timestamp=row[9],
    )


def _check_shard(shard: ShardLike) -> dict:
    for key in (shard.starting_hash_key, shard.ending_hash_key):
        if not (isinstance(key, str) and key.isascii() and key.isdigit()):
            raise ValueError(
                f"shard {shard.shard_id}: hash key {key!r} is not decimal text"
            )
    return {
        "shard_id": shard.shard_id,
        "parents": list(shard.parent_shard_ids),
        "start_key": shard.starting_hash_key,
        "end_key": shard.ending_hash_key,
    }


class LeaseTable:
    """SQL over ``shard_leases`` and ``ingest_workers`` for one stream."""

    def __init__(self, conn: psycopg.Connection, stream_name: str,
                 lease_duration_s: float = 10.0):
        self._conn = conn
        self.stream_name = stream_name
        self.lease_duration_s = lease_duration_s

    def _run(self, sql: str, **params) -> list[tuple]:
        params.setdefault("stream", self.stream_name)
        params.setdefault("duration", self.lease_duration_s)
        try:
            cur = self._conn.execute(sql, params)
        except psycopg.errors.LockNotAvailable as exc:
            shard = params.get("shard")
            rows = f"lease row {shard}" if shard else "lease rows"
            raise LeaseBusy(
                f"{rows} of {self.stream_name} locked by a commit in "
                "progress; trying again next cycle"
            ) from exc
        return cur.fetchall() if cur.description else []

    # -- rows -------------------------------------------------------------

    def ensure_rows(self, shards: Iterable[ShardLike]) -> list[str]:
        """Create missing lease rows; existing rows are left as they are.
        Returns the shard ids created by this call."""
        payload = [_check_shard(shard) for shard in shards]
        if not payload:
            return []
        rows = self._run(_ENSURE_ROWS, shards=Jsonb(payload))
        return sorted(row[0] for row in rows)

    def list(self) -> list[Lease]:
        rows = self._run(
            f"SELECT {LEASE_COLUMNS} FROM shard_leases "
            "WHERE stream_name = %(stream)s ORDER BY shard_id"
        )
        return [_lease(row) for row in rows]

    def get(self, shard_id: str) -> Lease | None:
        rows = self._run(
            f"SELECT {LEASE_COLUMNS} FROM shard_leases "
            "WHERE stream_name = %(stream)s AND shard_id = %(shard)s",
            shard=shard_id,
        )
        return _lease(rows[0]) if rows else None

    def now(self):
        return self._run("SELECT now()")[0][0]

    def prune_gone(self, present_shard_ids: Iterable[str],
                   listed_before=None) -> list[tuple[str, bool]]:
        """Delete rows of shards that discovery no longer lists: they aged
        out of the stream, and whatever they held is gone with them. Their
        children count a missing parent as done, so a parent that vanished
        before it was read to the end cannot block its children forever.
        Returns (shard_id, had_ended) for each row removed. Refuses an empty
        list, which would more likely mean a failed discovery than an empty
        stream. With ``listed_before`` (when the listing began), rows created
        after it are kept: a slow worker's old listing must not delete the
        children another worker has just found."""
        present = sorted(set(present_shard_ids))
        if not present:
            return []
        rows = self._run(
            "DELETE FROM shard_leases WHERE stream_name = %(stream)s "
            "AND NOT (shard_id = ANY(%(present)s)) "
            "AND (%(before)s::timestamptz IS NULL "
            "     OR created_at < %(before)s::timestamptz) "
            f"RETURNING shard_id, checkpoint_sequence = '{SHARD_END}'",
            present=present, before=listed_before,
        )
        return sorted((row[0], bool(row[1])) for row in rows)

    # -- ownership --------------------------------------------------------

    def take(self, shard_id: str, me: str, owner: str | None,
             counter: int) -> Lease | None:
        """Take a free or expired lease last seen as (owner, counter).
        Returns the lease under its new counter, or None if it moved."""
        rows = self._run(_TAKE, shard=shard_id, me=me, owner=owner,
                         counter=counter)
        return _lease(rows[0]) if rows else None

    def steal(self, shard_id: str, me: str, owner: str,
              counter: int) -> Lease | None:
        """Take a live lease from ``owner``. Waits for a commit holding the
        row; returns None if the lease moved meanwhile."""
        rows = self._run(_STEAL, shard=shard_id, me=me, owner=owner,
                         counter=counter)
        return _lease(rows[0]) if rows else None

    def renew(self, shard_id: str, me: str, counter: int) -> bool:
        """Push the expiry out. False means the lease is no longer ours."""
        rows = self._run(_RENEW, shard=shard_id, me=me, counter=counter)
        return bool(rows)

    def pin_start(self, shard_id: str, me: str, counter: int,
                  margin_s: float) -> datetime | None:
        """Record "now" (less ``margin_s``) as where a never-read shard
        starts, for a worker that would start it at LATEST. None when the
        shard already has a position or the lease is no longer ours."""
        rows = self._run(_PIN_START, shard=shard_id, me=me, counter=counter,
                         margin=margin_s)
        return rows[0][0] if rows else None

    def release(self, shard_id: str, me: str, counter: int) -> bool:
        rows = self._run(_RELEASE, shard=shard_id, me=me, counter=counter)
        return bool(rows)

    def release_all(self, me: str) -> dict[str, int]:
        """Give back every lease of this stream in ``me``'s name; returns
        {shard_id: new counter}."""
        return dict(self._run(_RELEASE_ALL, me=me))

    # -- workers ----------------------------------------------------------

    def heartbeat(self, me: str, selector: str) -> None:
        self._run(_HEARTBEAT, me=me, selector=selector)

    def live_workers(self, selector: str,
                     within_s: float | None = None) -> list[str]:
        """Workers of this stream and selector heard from within
        ``within_s`` (default: one lease duration)."""
        within = self.lease_duration_s if within_s is None else within_s
        rows = self._run(_LIVE_WORKERS, selector=selector, within=within)
        return [row[0] for row in rows]

    def forget_worker(self, me: str) -> None:
        self._run("DELETE FROM ingest_workers WHERE worker_id = %(me)s",
                  me=me)

    def prune_workers(self, silent_for_s: float) -> list[str]:
        rows = self._run(
            "DELETE FROM ingest_workers WHERE stream_name = %(stream)s "
            "AND heartbeat_at < now() - make_interval(secs => %(silent)s) "
            "RETURNING worker_id",
            silent=silent_for_s,
        )
        return sorted(row[0] for row in rows)

    # -- operator ---------------------------------------------------------

    def reset(self, shard_id: str | None = None, *,
              after_sequence: str | None = None,
              at_timestamp: datetime | None = None) -> list[str]:
        """Rewind one shard, or every shard of the stream, for the operator.

        ``after_sequence``: the shard resumes AFTER that sequence number,
        exactly as from a checkpoint (a checkpoint names the last record
        stored). To replay a record itself, give the one before it, or a
        timestamp. Needs ``shard_id``: sequence numbers belong to one shard.

        ``at_timestamp``: the checkpoint is cleared and the next reader
        starts at the first record that arrived at or after that time.
        Rewinding a whole stream reopens ended parents too, so children wait
        for their parents again and order is kept.

        Either way the lease is freed and its counter moves: the holder's
        in-flight batch fails its fence, its next renewal reports the lease
        lost, and the next cycle of any worker takes the shard and starts
        from the new position. Returns the shard ids rewound.
        """
        if (after_sequence is None) == (at_timestamp is None):
            raise ConfigError(
                "reset needs exactly one of a sequence number or a timestamp"
            )
        if after_sequence is not None:
            if shard_id is None:
                raise ConfigError(
                    "reset to a sequence number needs a shard id: sequence "
                    "numbers belong to one shard"
                )
            if not (after_sequence.isascii() and after_sequence.isdigit()):
                raise ConfigError(
                    f"reset: {after_sequence!r} is not a sequence number "
                    "(decimal digits)"
                )
            rows = self._run(_RESET_TO_SEQUENCE, shard=shard_id,
                             sequence=after_sequence)
        else:
            if at_timestamp.tzinfo is None:
                raise ConfigError(
                    "reset: the timestamp needs a time zone (e.g. ...Z)"
                )
            rows = self._run(_RESET_TO_TIMESTAMP, shard=shard_id,
                             at=at_timestamp)
        if shard_id is not None and not rows:
            raise ConfigError(
                f"reset: stream {self.stream_name} has no lease for shard "
                f"{shard_id}"
            )
        return sorted(row[0] for row in rows)
