"""Which shards a worker may lease: the ``--shards`` selector. Pure, no I/O.

Three forms:

- ``all`` (the default): every shard of the stream.
- ``G/N``: shard group G of N (1-based). The 2^128 hash-key space is cut into
  N equal ranges and a shard belongs to the range the middle of its hash
  range falls in. Groups follow hash ranges, not shard ids, so after a split
  or a merge the children land in the group of their own hash range and a
  fleet keeps its partitioning through resharding. The middle rather than
  the starting key: on AWS's even splits both agree, but an emulator (or a
  hand-made split) may start a shard a few keys below a group boundary, and
  by its starting key that shard would join the group it barely touches.
- a comma-separated list of shard ids: exactly those shards. Children of a
  listed shard are not listed, so this form does not follow resharding; it
  is meant for pinning or debugging one shard.

Workers share shards through leases only with workers that carry the same
selector, so the canonical text (``str(selector)``) is what the worker
registers and what fair share is counted by.
"""

import re
from dataclasses import dataclass

from worker.errors import ConfigError

# Kinesis hash keys are unsigned 128-bit integers.
HASH_SPACE = 2**128

_GROUP = re.compile(r"^(\d+)/(\d+)$")

# Kinesis shard ids are always "shardId-" and twelve digits. Being strict here
# turns a typo into a start-up error instead of a worker that never finds its
# shard and sits idle.
_SHARD_ID = re.compile(r"^shardId-\d{12}$")

_FORMS = "use 'all', 'G/N' (1 <= G <= N) or a comma list of shardId-NNNNNNNNNNNN"


class SelectorError(ConfigError):
    """A ``--shards`` value that is not a selector. ``detail`` says what is
    wrong without naming the flag, for messages that name it already."""

    def __init__(self, text: str, detail: str):
        super().__init__(f"--shards {text!r}: {detail}")
        self.detail = detail


def hash_group(hash_key: int | str, groups: int) -> int:
    """The 1-based group of ``groups`` a hash key falls in."""
    start = int(hash_key)
    if not 0 <= start < HASH_SPACE:
        raise ValueError(f"hash key {start} is outside 0 .. 2^128-1")
    return start * groups // HASH_SPACE + 1


@dataclass(frozen=True, slots=True)
class ShardSelector:
    """A parsed selector; build it with ``parse_selector``."""

    group: int | None = None
    groups: int | None = None
    shard_ids: frozenset[str] | None = None

    def matches(self, shard_id: str, starting_hash_key: int | str,
                ending_hash_key: int | str | None = None) -> bool:
        if self.shard_ids is not None:
            return shard_id in self.shard_ids
        if self.groups is not None:
            key = int(starting_hash_key)
            if ending_hash_key is not None:
                key = (key + int(ending_hash_key)) // 2
            return hash_group(key, self.groups) == self.group
        return True

    def __str__(self) -> str:
        if self.shard_ids is not None:
            return ",".join(sorted(self.shard_ids))
        if self.groups is not None:
            return f"{self.group}/{self.groups}"
        return "all"


ALL_SHARDS = ShardSelector()


def parse_selector(text: str | None) -> ShardSelector:
    """Parse ``--shards``; any nonsense is one ConfigError line."""
    if text is None:
        return ALL_SHARDS
    cleaned = text.strip()
    if not cleaned:
        raise SelectorError(cleaned, f"is empty; {_FORMS}")
    if cleaned.lower() == "all":
        return ALL_SHARDS

    group = _GROUP.match(cleaned)
    if group:
        g, n = int(group.group(1)), int(group.group(2))
        if not 1 <= g <= n:
            raise SelectorError(
                cleaned, f"group must be between 1 and {n}; {_FORMS}")
        return ShardSelector(group=g, groups=n)

    ids = [part.strip() for part in cleaned.split(",")]
    bad = [part for part in ids if not _SHARD_ID.match(part)]
    if bad:
        raise SelectorError(
            cleaned, f"{bad[0]!r} is not a shard id; {_FORMS}")
    return ShardSelector(shard_ids=frozenset(ids))
