"""The AWS side's one seam: every Kinesis call the worker makes goes through
``KinesisClient``, which classifies errors and retries the retriable ones.

Tests inject faults by handing ``KinesisClient`` a wrapped boto3 client; the
rest of the worker never talks to boto3 directly.
"""

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

import boto3
import botocore.config
import botocore.exceptions
import urllib3.exceptions
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_random_exponential,
)

from worker.errors import ConfigError, WorkerError

log = logging.getLogger(__name__)

# Error codes that mean "slow down and try the same call again". Kinesis
# documents these for GetRecords and ListShards; never skip a record for them.
THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "KMSThrottlingException",
    "ThrottlingException",
    "RequestLimitExceeded",
})
SERVER_CODES = frozenset({
    "InternalFailure", "InternalFailureException", "ServiceUnavailable",
    "ServiceUnavailableException", "InternalServerError",
})
# Transport faults: botocore's connection family (refused, closed, timed
# out, TLS, proxy), its generic HTTP client error, and urllib3's errors,
# which surface unwrapped when a response body breaks off mid-read.
CONNECTION_ERRORS = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    urllib3.exceptions.HTTPError,
)
CREDENTIAL_CODES = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException",
    "AccessDeniedException", "ExpiredTokenException",
    "IncompleteSignature", "MissingAuthenticationToken",
})

# Backoff for retriable errors: start small (a throttled shard recovers within
# a second), cap at 10 s so a long outage is still polled often enough to
# notice recovery, with full jitter so many shards do not retry in lockstep.
BACKOFF_INITIAL_S = 0.2
BACKOFF_MAX_S = 10.0

# Socket timeouts. GetRecords answers within a few seconds even for 10 MB
# pages; a call hanging longer is a network fault to retry, not to wait out.
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 15

# The operation name under which the fast GetRecords path goes through the
# same retrying wrapper as boto3's calls.
FAST_GET_RECORDS = "fast_get_records"


class KinesisError(WorkerError):
    """A Kinesis call failed in a way that retrying will not fix."""


class StreamNotFound(KinesisError):
    pass


class IteratorExpired(WorkerError):
    """The shard iterator aged out (five minutes unused): get a new one after
    the last committed record."""

    retriable = True


class RetriableKinesisError(WorkerError):
    retriable = True

    def __init__(self, cause: str, message: str):
        super().__init__(message)
        self.cause = cause  # throttled | server | connection


@dataclass(frozen=True, slots=True)
class ShardInfo:
    shard_id: str
    parent_shard_ids: tuple[str, ...]
    starting_hash_key: str
    ending_hash_key: str
    # Set when the shard is closed (resharded away); no new records arrive.
    ending_sequence_number: str | None = None


@dataclass(slots=True)
class StreamRecord:
    sequence_number: str
    data: bytes
    partition_key: str
    arrived_at: datetime | None


@dataclass(slots=True)
class Page:
    records: list[StreamRecord]
    # None: the shard is closed and fully read (SHARD_END).
    next_iterator: str | None
    millis_behind_latest: int | None
    child_shard_ids: list[str] = field(default_factory=list)
    size_bytes: int = 0


def classify(exc: BaseException) -> BaseException:
    """Translate a botocore error into the worker's own error types."""
    if isinstance(exc, CONNECTION_ERRORS):
        return RetriableKinesisError("connection", str(exc))
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode", 0
        )
        message = f"{code}: {error.get('Message', '')}".strip()
        if code == "ExpiredIteratorException":
            return IteratorExpired(message)
        if code in THROTTLING_CODES:
            return RetriableKinesisError("throttled", message)
        if code in SERVER_CODES or status >= 500:
            return RetriableKinesisError("server", message)
        if code == "ResourceNotFoundException":
            return StreamNotFound(message)
        if code in CREDENTIAL_CODES:
            return ConfigError(
                f"AWS rejected the credentials ({message}): set "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an IAM role"
            )
        return KinesisError(message)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ConfigError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run with an IAM role"
        )
    return exc


def make_boto3_client(endpoint: str | None, region: str):
    kwargs = {}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
        # Emulators accept any credentials; do not make users invent some.
        session = boto3.session.Session()
        if session.get_credentials() is None:
            kwargs["aws_access_key_id"] = "test"
            kwargs["aws_secret_access_key"] = "test"
    config = botocore.config.Config(
        # One retry policy only: ours (tenacity, with jitter and a stop
        # event). The SDK's own retries would multiply with it. (botocore's
        # "max_attempts" counts retries; "total_max_attempts" counts calls.)
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=50,
    )
    return boto3.client("kinesis", region_name=region, config=config, **kwargs)


class KinesisClient:
    """Kinesis calls with error classification and one backoff policy.

    ``stop`` ends any backoff at once (shutdown must not wait out a sleep);
    ``on_retry(cause)`` lets the caller count retries by cause.
    """

    def __init__(self, boto_client, stop: threading.Event | None = None,
                 on_retry=None, backoff_initial_s: float = BACKOFF_INITIAL_S,
                 backoff_max_s: float = BACKOFF_MAX_S,
                 fast_get_records: bool = True):
        self._client = boto_client
        self._stop = stop or threading.Event()
        self._on_retry = on_retry
        self._wait = wait_random_exponential(
            multiplier=backoff_initial_s, max=backoff_max_s
        )
        # GetRecords answers read by orjson (fast_records.py) cost a fraction
        # of botocore's parse per record. Only a real botocore client can be
        # used that way; a wrapped one (fault-injection tests) keeps boto3.
        self._fast = None
        # Set once an answer was not understood; never unset, so threads
        # between the check and the call still find self._fast.
        self._fast_doubted = False
        if fast_get_records:
            from worker.kinesis import fast_records

            if fast_records.fits(boto_client):
                self._fast = fast_records.FastGetRecords(boto_client)

    # -- one attempt each ------------------------------------------------

    def _do(self, operation: str, **kwargs):
        if operation == FAST_GET_RECORDS:
            call = self._fast.get_records
        else:
            call = getattr(self._client, operation)
        try:
            return call(**kwargs)
        except Exception as exc:  # translated, never swallowed
            translated = classify(exc)
            if translated is exc:
                raise
            raise translated from exc

    # -- retrying wrappers -----------------------------------------------

    def _call(self, operation: str, **kwargs):
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception()
            cause = getattr(exc, "cause", "other")
            log.warning("kinesis %s retry %d (%s): %s", operation,
                        state.attempt_number, cause, exc)
            if self._on_retry:
                self._on_retry(cause)

        retrying = Retrying(
            retry=retry_if_exception(
                lambda e: isinstance(e, RetriableKinesisError)
            ),
            wait=self._wait,
            stop=lambda state: self._stop.is_set(),
            sleep=self._stop.wait,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._do, operation, **kwargs)

    def check_stream(self, stream: str, endpoint: str | None) -> None:
        """One attempt, at start-up: the stream exists and can be reached.
        Fails with one clear line instead of retrying forever."""
        where = endpoint or "AWS"
        try:
            self._do("describe_stream_summary", StreamName=stream)
        except StreamNotFound:
            raise ConfigError(
                f"Kinesis stream {stream!r} does not exist at {where}: create "
                "it or set STREAM_NAME") from None
        except RetriableKinesisError as exc:
            raise ConfigError(
                f"cannot reach Kinesis at {where} ({exc.cause}): check "
                "KINESIS_ENDPOINT / AWS_REGION and the network") from None
        except KinesisError as exc:
            raise ConfigError(f"Kinesis at {where} refused: {exc}") from None

    def describe_stream(self, stream: str) -> dict:
        return self._call(
            "describe_stream_summary", StreamName=stream
        )["StreamDescriptionSummary"]

    def list_shards(self, stream: str) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        token = None
        while True:
            if token:
                page = self._call("list_shards", NextToken=token)
            else:
                page = self._call("list_shards", StreamName=stream)
            for s in page.get("Shards", []):
                parents = tuple(p for p in (s.get("ParentShardId"),
                                            s.get("AdjacentParentShardId"))
                                if p)
                shards.append(ShardInfo(
                    shard_id=s["ShardId"],
                    parent_shard_ids=parents,
                    starting_hash_key=s["HashKeyRange"]["StartingHashKey"],
                    ending_hash_key=s["HashKeyRange"]["EndingHashKey"],
                    ending_sequence_number=s.get(
                        "SequenceNumberRange", {}
                    ).get("EndingSequenceNumber"),
                ))
            token = page.get("NextToken")
            if not token:
                return shards

    def get_shard_iterator(self, stream: str, shard_id: str, iterator_type: str,
                           sequence_number: str | None = None,
                           timestamp: datetime | None = None) -> str:
        kwargs = {"StreamName": stream, "ShardId": shard_id,
                  "ShardIteratorType": iterator_type}
        if sequence_number is not None:
            kwargs["StartingSequenceNumber"] = sequence_number
        if timestamp is not None:
            kwargs["Timestamp"] = timestamp
        return self._call("get_shard_iterator", **kwargs)["ShardIterator"]

    def get_records(self, iterator: str, limit: int) -> Page:
        if self._fast is not None and not self._fast_doubted:
            from worker.kinesis.fast_records import ParseDoubt

            try:
                return self._call(FAST_GET_RECORDS, ShardIterator=iterator,
                                  Limit=limit)
            except ParseDoubt as exc:
                # Asking again with the same iterator is safe: nothing moved.
                log.warning("GetRecords answer not understood by the fast "
                            "parser (%s); boto3 reads every page from now on",
                            exc)
                self._fast_doubted = True
        response = self._call("get_records", ShardIterator=iterator,
                              Limit=limit)
        records = []
        size = 0
        for r in response.get("Records", []):
            data = r["Data"]
            size += len(data)
            records.append(StreamRecord(
                sequence_number=r["SequenceNumber"],
                data=data,
                partition_key=r.get("PartitionKey", ""),
                arrived_at=r.get("ApproximateArrivalTimestamp"),
            ))
        children = [c["ShardId"] for c in response.get("ChildShards") or []]
        return Page(
            records=records,
            next_iterator=response.get("NextShardIterator"),
            millis_behind_latest=response.get("MillisBehindLatest"),
            child_shard_ids=children,
            size_bytes=size,
        )

    def update_shard_count(self, stream: str, target: int) -> dict:
        return self._call("update_shard_count", StreamName=stream,
                          TargetShardCount=target,
                          ScalingType="UNIFORM_SCALING")
