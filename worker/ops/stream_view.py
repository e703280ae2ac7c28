"""What Kinesis says about a stream, for ``status``: its shards and, for each
shard still being read, the lag measured now at the shard's checkpoint.

Kinesis is never required: a failure becomes a note on the view, and status
falls back to what the workers recorded in the database.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError

from worker.errors import WorkerError, first_line
from worker.kinesis.client import (
    KinesisClient,
    Page,
    ShardInfo,
    StreamNotFound,
    make_boto3_client,
)
from worker.kinesis.reader import ShardReader, StartPosition

log = logging.getLogger(__name__)

# Kinesis failures status reports instead of raising: the worker's own
# classified errors, and whatever botocore raises that classify() passes on.
KINESIS_FAILURES = (WorkerError, BotoCoreError)

# Shards measured at the same time. GetShardIterator and GetRecords limits are
# per shard, so parallel calls on different shards do not compete; eight
# keeps status of a 100-shard stream to about a second over a real network
# without opening a connection per shard.
LIVE_LAG_PARALLEL = 8


@dataclass(slots=True)
class StreamView:
    reachable: bool
    status: str | None = None
    shards: dict[str, ShardInfo] = field(default_factory=dict)
    # Why Kinesis could not be asked at all.
    error: str | None = None
    live_lag: dict[str, int | None] = field(default_factory=dict)
    # Shards whose live lag could not be measured, and why.
    lag_errors: dict[str, str] = field(default_factory=dict)


def one_attempt_client(settings) -> KinesisClient:
    """A client for a snapshot. A Kinesis that fails once is reported rather
    than waited out; a stop event that is already set makes KinesisClient
    try each call once instead of backing off."""
    stop = threading.Event()
    stop.set()
    boto = make_boto3_client(settings.kinesis_endpoint, settings.aws_region)
    return KinesisClient(boto, stop=stop)


# The stream status shown when Kinesis says the stream does not exist.
STREAM_NOT_FOUND = "NOT FOUND"


def read_stream(client: KinesisClient, stream: str) -> StreamView:
    """The stream's status and shards, or a view saying why not."""
    try:
        summary = client.describe_stream(stream)
        shards = client.list_shards(stream)
    except StreamNotFound:
        # Kinesis answered: the stream is not there (deleted, or a wrong
        # STREAM_NAME). The lease rows, if any, are still worth showing.
        return StreamView(reachable=True, status=STREAM_NOT_FOUND)
    except KINESIS_FAILURES as exc:
        log.debug("stream %s not readable: %s", stream, exc)
        return StreamView(reachable=False, error=first_line(exc))
    return StreamView(reachable=True, status=summary.get("StreamStatus"),
                      shards={shard.shard_id: shard for shard in shards})


def probe(client: KinesisClient, stream: str, shard_id: str,
          start: StartPosition) -> Page:
    """One GetRecords (Limit=1) from where the shard's next reader would
    start: the first unread record, if any, and MillisBehindLatest there.

    The shard reader itself picks the iterator (after the checkpoint, at a
    reset time, or the initial position), so this looks exactly where a
    worker would read next.
    """
    reader = ShardReader(client, stream, shard_id, start, max_records=1,
                         idle_interval_s=0.0, stop=threading.Event())
    return reader.fetch_next()


def measure_live_lag(client: KinesisClient, view: StreamView, stream: str,
                     starts: dict[str, StartPosition]) -> None:
    """MillisBehindLatest at each shard's next start; fills
    ``view.live_lag`` and ``view.lag_errors``."""
    def measure(shard_id: str) -> tuple[str, int | None, str | None]:
        try:
            page = probe(client, stream, shard_id, starts[shard_id])
        except KINESIS_FAILURES as exc:
            return shard_id, None, first_line(exc)
        return shard_id, page.millis_behind_latest, None

    if not starts:
        return
    with ThreadPoolExecutor(min(LIVE_LAG_PARALLEL, len(starts)),
                            thread_name_prefix="status-lag") as pool:
        for shard_id, lag, error in pool.map(measure, sorted(starts)):
            if error is None:
                view.live_lag[shard_id] = lag
            else:
                view.lag_errors[shard_id] = error
