"""``ven-worker scale --shards N``: set the stream's open shard count with
UpdateShardCount (uniform scaling), wait until the stream is ACTIVE again,
and print the new shard map.

Nothing else is needed: running workers list the stream every
DISCOVERY_INTERVAL_S, create lease rows for the new shards, finish the closed
parents first and then take the children, without a restart.
"""

import logging
import math
import threading
import time

from botocore.exceptions import BotoCoreError

from worker.errors import ConfigError, WorkerError, first_line
from worker.kinesis.client import (
    IteratorExpired,
    KinesisClient,
    KinesisError,
    RetriableKinesisError,
    StreamNotFound,
    make_boto3_client,
)
from worker.ops.render import duration, shard_map
from worker.ops.stream_view import one_attempt_client

log = logging.getLogger(__name__)

# By default UpdateShardCount refuses more than 10,000 shards per stream; a
# count above it is far more likely a typo than a plan.
MAX_SHARDS = 10_000

# Resharding a small stream takes seconds; AWS says a large one can take
# several minutes. Half an hour covers a stream of hundreds of shards; past
# it the change may still finish, and `status` shows when it has.
ACTIVE_DEADLINE_S = 1800.0

# How often the stream's status is asked while it is UPDATING: often enough
# to notice ACTIVE within a couple of seconds, far under the API's limit of
# 20 DescribeStreamSummary calls per second per account.
POLL_INTERVAL_S = 2.0

# A progress line this often while waiting, so a long reshard does not look
# like a hung command.
PROGRESS_INTERVAL_S = 15.0


def allowed_range(current: int) -> tuple[int, int]:
    """Targets one UpdateShardCount accepts from ``current`` open shards:
    no less than half, no more than double."""
    return max(1, math.ceil(current / 2)), min(2 * current, MAX_SHARDS)


def check_target(target: int, current: int) -> None:
    if not 1 <= target <= MAX_SHARDS:
        raise ConfigError(
            f"scale: --shards must be 1 to {MAX_SHARDS}, got {target}")
    low, high = allowed_range(current)
    if low <= target <= high:
        return
    steps = _steps(current, target)
    raise ConfigError(
        f"scale: Kinesis changes a stream by at most doubling or halving "
        f"its shard count in one step; from {current} open shards choose "
        f"{low} to {high}, or reach {target} in steps "
        f"({' then '.join(map(str, steps))})")


def _steps(current: int, target: int) -> list[int]:
    steps = []
    while current != target:
        low, high = allowed_range(current)
        current = min(max(target, low), high)
        steps.append(current)
    return steps


def _open_shards(client: KinesisClient, stream: str) -> list:
    return [s for s in client.list_shards(stream)
            if s.ending_sequence_number is None]


def scale(settings, shards: int, kinesis: KinesisClient | None = None,
          deadline_s: float = ACTIVE_DEADLINE_S,
          poll_interval_s: float = POLL_INTERVAL_S) -> int:
    """Change the open shard count to ``shards`` and wait for it."""
    stream = settings.stream_name
    where = settings.kinesis_endpoint or "AWS"
    # Set at the deadline: it ends the wait and any retry of a throttled
    # call at once (KinesisClient backs off by waiting on it).
    deadline = threading.Event()
    timer = threading.Timer(deadline_s, deadline.set)
    timer.daemon = True
    timer.start()
    client = kinesis or KinesisClient(
        make_boto3_client(settings.kinesis_endpoint, settings.aws_region),
        stop=deadline)
    # The change itself is asked once: its LimitExceededException means
    # "too many changes today" or "over the account's shard quota", which
    # backing off for half an hour would only hide.
    once = kinesis or one_attempt_client(settings)
    try:
        return _scale(client, once, stream, where, shards, deadline,
                      poll_interval_s)
    except StreamNotFound:
        raise ConfigError(f"scale: Kinesis stream {stream!r} does not exist "
                          f"at {where}") from None
    except (KinesisError, RetriableKinesisError, IteratorExpired,
            BotoCoreError) as exc:
        raise WorkerError(f"scale: Kinesis at {where} refused or failed: "
                          f"{first_line(exc)}") from exc
    finally:
        timer.cancel()


def _scale(client: KinesisClient, once: KinesisClient, stream: str,
           where: str, target: int, deadline: threading.Event,
           poll_interval_s: float) -> int:
    summary = client.describe_stream(stream)
    mode = summary.get("StreamModeDetails", {}).get("StreamMode")
    if mode == "ON_DEMAND":
        raise ConfigError(f"scale: stream {stream} is in on-demand mode, "
                          "where Kinesis sets the shard count itself")
    if summary["StreamStatus"] != "ACTIVE":
        raise ConfigError(f"scale: stream {stream} is "
                          f"{summary['StreamStatus']}; run scale again once "
                          "it is ACTIVE (see `ven-worker status`)")
    current = summary.get("OpenShardCount") or len(
        _open_shards(client, stream))
    if current == target:
        print(f"stream {stream} already has {target} open shard(s)")
        _print_map(client, stream)
        return 0
    check_target(target, current)

    print(f"stream {stream} at {where}: {current} -> {target} open shards "
          "(UpdateShardCount, uniform scaling)")
    once.update_shard_count(stream, target)
    log.info("stream %s: UpdateShardCount %d -> %d accepted", stream,
             current, target)
    _wait_active(client, stream, deadline, poll_interval_s)
    _print_map(client, stream)
    print("running workers pick the new shards up at their next shard "
          "listing: closed parents are finished first, then their children "
          "are read")
    return 0


def _wait_active(client: KinesisClient, stream: str,
                 deadline: threading.Event, poll_interval_s: float) -> None:
    started = time.monotonic()
    last_progress = started
    while True:
        state = client.describe_stream(stream)["StreamStatus"]
        waited = time.monotonic() - started
        if state == "ACTIVE":
            print(f"stream {stream} is ACTIVE after {duration(waited)}")
            return
        if time.monotonic() - last_progress >= PROGRESS_INTERVAL_S:
            print(f"  still {state} after {duration(waited)}")
            last_progress = time.monotonic()
        if deadline.wait(poll_interval_s):
            raise WorkerError(
                f"scale: stream {stream} still {state} after "
                f"{duration(waited)}; the change was accepted and may yet "
                "finish: check with `ven-worker status`")


def _print_map(client: KinesisClient, stream: str) -> None:
    shards = _open_shards(client, stream)
    print(f"open shards of {stream}:")
    for line in shard_map(shards):
        print("  " + line)
