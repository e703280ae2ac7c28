#!/usr/bin/env python3
"""The IoT rule ``mqtt-forward-volttron_metering``, emulated: MQTT -> Kinesis.

LocalStack's free edition has no IoT rules, so this process stands in for
``SELECT * FROM 'volttron/metering'`` with a Kinesis action: every message on
the topic goes into the stream with its payload bytes unchanged and a
partition key rendered from a template.

    python localstack/forwarder.py --stream NAME --endpoint URL \\
        [--partition-key '${venId}'] [--mqtt-host H] [--mqtt-port P]

Runs until SIGTERM or SIGINT, then puts what it holds and exits 0.

Where it differs from the rule, on purpose:
- the rule makes one PutRecord per message; this batches messages arriving
  within a short linger into one PutRecords call, because LocalStack takes
  far fewer calls per second than records per call. ``--max-batch 1``
  sends one message per call. Either way a record retried after throttling
  can land behind messages that arrived after it, as with the rule;
- a key template that cannot be rendered (field absent, payload not JSON,
  result empty or over Kinesis's 256 characters) yields the fallback key,
  where the rule would fail the action.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import random
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import botocore.exceptions

log = logging.getLogger("forwarder")

# Kinesis PutRecords limits: 500 records and 5 MiB per call, 1 MiB per
# record, partition key included in both sizes; keys 1 to 256 characters.
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_KEY_CHARS = 256

# VENs report every few seconds, so 50 ms of added latency is invisible,
# while a burst from a simulated fleet leaves in a handful of calls.
DEFAULT_LINGER_MS = 50

# Messages waiting for Kinesis. When full, the MQTT thread blocks, so the
# broker holds further messages instead of this process growing without
# bound during a long Kinesis outage (100k small readings is ~100 MB).
MAX_QUEUED = 100_000

# Retry of throttled or failed puts: first wait 100 ms, doubling to at most
# 5 s, full jitter; ten attempts ride out about half a minute of outage
# before a record is given up (with a warning naming it). During such an
# outage a SIGTERM waits for the same retries before the process exits.
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 5.0
MAX_PUT_ATTEMPTS = 10

# Error codes (whole call or per record) that a later retry can cure.
RETRIABLE_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "LimitExceededException",
    "KMSThrottlingException",
    "RequestLimitExceeded",
    "InternalFailure",
    "InternalFailureException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalServerError",
})

PRODUCTION_KEY = "iot"  # the constant key of the production rule
DEFAULT_STREAM = "mqtt-forward-mqtt-stream"
DEFAULT_TOPIC = "volttron/metering"


class SetupError(Exception):
    """Bad settings or an unreachable dependency at start: one line, exit 1."""


# --- partition key templates ---------------------------------------------

_SUBSTITUTION = re.compile(r"\$\{([^}]*)\}")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TOPIC = re.compile(r"topic\(\s*(\d*)\s*\)$")


class _Missing(Exception):
    """A substitution has no value: the whole key falls back."""


@dataclass(frozen=True)
class KeyTemplate:
    """A parsed partition-key template such as ``iot``, ``${venId}``,
    ``ven-${venId}``, ``${newuuid()}``, ``${topic()}`` or ``${topic(2)}``.

    ``parts`` holds literal strings and (kind, argument) pairs; ``kind`` is
    "field" (a dotted path into the JSON payload), "topic" (0 for the whole
    topic, else the 1-based level) or "uuid".
    """

    text: str
    parts: tuple
    fallback: str

    @property
    def reads_payload(self) -> bool:
        return any(isinstance(p, tuple) and p[0] == "field" for p in self.parts)

    def render(self, topic: str, payload: bytes) -> str:
        """The partition key for one message; the fallback when any
        substitution has no value or the result is not a valid key."""
        document = _json_object(payload) if self.reads_payload else None
        try:
            key = "".join(_render_part(p, topic, document) for p in self.parts)
        except _Missing:
            return self.fallback
        if not key or len(key) > MAX_KEY_CHARS or not _utf8(key):
            return self.fallback
        return key


def parse_template(text: str, fallback: str = PRODUCTION_KEY) -> KeyTemplate:
    """Parse a template; ValueError names what is wrong with it."""
    if not fallback or len(fallback) > MAX_KEY_CHARS:
        raise ValueError(f"fallback key must be 1-{MAX_KEY_CHARS} characters")
    if not text:
        raise ValueError("partition key template is empty")

    parts: list = []
    position = 0
    for match in _SUBSTITUTION.finditer(text):
        if match.start() > position:
            parts.append(text[position:match.start()])
        parts.append(_parse_expression(match.group(1).strip(), text))
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    if any(isinstance(p, str) and "${" in p for p in parts):
        raise ValueError(f"unclosed ${{ in partition key template {text!r}")
    return KeyTemplate(text, tuple(parts), fallback)


def _parse_expression(expression: str, text: str) -> tuple:
    if expression == "newuuid()":
        return ("uuid", None)
    topic = _TOPIC.match(expression)
    if topic:
        return ("topic", int(topic.group(1) or 0))
    if _FIELD.match(expression):
        return ("field", tuple(expression.split(".")))
    raise ValueError(
        f"unsupported ${{{expression}}} in partition key template {text!r}: "
        "use a payload field, newuuid(), topic() or topic(N)"
    )


def _utf8(text: str) -> bool:
    """False for text with lone surrogates (JSON's \\ud800 escapes decode
    to them), which no request to Kinesis can carry."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _json_object(payload: bytes) -> dict | None:
    try:
        document = json.loads(payload)
    except ValueError:  # not JSON, or not text at all
        return None
    return document if isinstance(document, dict) else None


def _render_part(part, topic: str, document: dict | None) -> str:
    if isinstance(part, str):
        return part
    kind, argument = part
    if kind == "uuid":
        return str(uuid.uuid4())
    if kind == "topic":
        if argument == 0:
            return topic
        levels = topic.split("/")
        if argument > len(levels):
            raise _Missing
        return levels[argument - 1]
    return _field_text(document, argument)


def _field_text(document: dict | None, path: tuple[str, ...]) -> str:
    value = document
    for name in path:
        if not isinstance(value, dict) or name not in value:
            raise _Missing
        value = value[name]
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (dict, list)):
        raise _Missing
    return json.dumps(value)  # numbers and booleans as JSON spells them


# --- batching ------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    key: str

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.key.encode())


class BatchBuilder:
    """Collects messages into PutRecords-sized batches."""

    def __init__(self, max_records: int = MAX_BATCH_RECORDS,
                 max_bytes: int = MAX_BATCH_BYTES):
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._pending: list[Message] = []
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.max_records

    def add(self, message: Message) -> list[Message] | None:
        """Add a message; returns the batch it pushed out, if the message
        did not fit beside what was pending."""
        pushed = None
        if self._bytes + message.size > self.max_bytes:
            pushed = self.take()
        self._pending.append(message)
        self._bytes += message.size
        return pushed

    def take(self) -> list[Message]:
        batch, self._pending, self._bytes = self._pending, [], 0
        return batch


# --- putting -------------------------------------------------------------


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter; tests pass initial=0."""

    initial: float = BACKOFF_INITIAL_S
    cap: float = BACKOFF_MAX_S
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.initial * 2 ** attempt))


# Failures of a whole call that say nothing about the records: the network
# or the endpoint, so the same call may succeed later.
NETWORK_ERRORS = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
)


def _classify(exc: botocore.exceptions.ClientError) -> tuple[str, bool]:
    """(code, retriable) of a refused call: by code, or any 5xx status."""
    code = exc.response.get("Error", {}).get("Code", "Unknown")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, code in RETRIABLE_CODES or (status or 0) >= 500


def put_with_retry(client, stream: str, batch: list[Message],
                   backoff: Backoff | None = None,
                   sleep: Callable[[float], object] = time.sleep,
                   max_attempts: int = MAX_PUT_ATTEMPTS,
                   ) -> list[tuple[Message, str]]:
    """Put the batch, retrying what failed for a retriable reason. Returns
    the messages given up, each with its last error code."""
    backoff = backoff or Backoff()
    remaining = list(batch)
    given_up: list[tuple[Message, str]] = []
    for attempt in range(max_attempts):
        if attempt:
            sleep(backoff.delay(attempt - 1))
        failed = _do_put(client, stream, remaining)
        given_up += [(m, code) for m, code, retriable in failed if not retriable]
        retry = [(m, code) for m, code, retriable in failed if retriable]
        if not retry:
            return given_up
        remaining = [m for m, _ in retry]
        log.debug("retrying %d of %d records (attempt %d): %s",
                  len(retry), len(batch), attempt + 1, retry[0][1])
    return given_up + retry


def _do_put(client, stream: str, batch: list[Message]):
    """One PutRecords call. Returns [(message, code, retriable)] failed."""
    try:
        answer = client.put_records(StreamName=stream, Records=[
            {"Data": m.payload, "PartitionKey": m.key} for m in batch
        ])
    except botocore.exceptions.ClientError as exc:
        code, retriable = _classify(exc)
        return [(m, code, retriable) for m in batch]
    except NETWORK_ERRORS as exc:
        return [(m, type(exc).__name__, True) for m in batch]

    if not answer.get("FailedRecordCount"):
        return []
    return [
        (m, result["ErrorCode"], result["ErrorCode"] in RETRIABLE_CODES)
        for m, result in zip(batch, answer["Records"])
        if result.get("ErrorCode")
    ]


# --- the running forwarder -----------------------------------------------

_STOP = object()  # queued after the last message: the sender drains and ends


class Forwarder:
    """MQTT subscription on one side, a sender thread on the other."""

    def __init__(self, client, stream: str, template: KeyTemplate,
                 linger_s: float, max_batch: int):
        self.kinesis = client
        self.stream = stream
        self.template = template
        self.linger_s = linger_s
        self.max_batch = max_batch
        self.inbox: queue.Queue = queue.Queue(MAX_QUEUED)
        self.forwarded = 0
        self.given_up = 0
        self._sender = threading.Thread(
            target=self.send_routine, name="kinesis-sender", daemon=True
        )

    def start(self) -> None:
        self._sender.start()

    def accept(self, topic: str, payload: bytes) -> None:
        """Called on the MQTT thread for each message."""
        self.inbox.put((topic, payload))

    def close(self) -> None:
        """Put everything accepted so far, then return."""
        self.inbox.put(_STOP)
        self._sender.join()

    def send_routine(self) -> None:
        batch = BatchBuilder(max_records=self.max_batch)
        stopping = False
        while not stopping:
            item = self.inbox.get()  # block until the first of a batch
            deadline = time.monotonic() + self.linger_s
            while True:
                if item is _STOP:
                    stopping = True
                    break
                pushed = self._add(batch, *item)
                if pushed:
                    self._put(pushed)
                if batch.full:
                    break
                try:
                    item = self.inbox.get(
                        timeout=max(0.0, deadline - time.monotonic())
                    )
                except queue.Empty:
                    break
            if len(batch):
                self._put(batch.take())

    def _add(self, batch: BatchBuilder, topic: str, payload: bytes):
        message = Message(topic, payload, self.template.render(topic, payload))
        if message.size > MAX_RECORD_BYTES:
            log.warning(
                "dropping a %d-byte message on %s (key %s): over Kinesis's "
                "1 MiB record limit", len(payload), topic, message.key,
            )
            self.given_up += 1
            return None
        log.debug("holding %d bytes from %s, key %s",
                  len(payload), topic, message.key)
        return batch.add(message)

    def _put(self, batch: list[Message]) -> None:
        try:
            failed = put_with_retry(self.kinesis, self.stream, batch)
        except Exception:  # a bug or an unforeseen error: log what is lost
            log.exception("giving up %d messages for %s after an "
                          "unexpected error", len(batch), self.stream)
            self.given_up += len(batch)
            return
        for message, code in failed:
            log.warning(
                "could not put a %d-byte message on %s (key %s) into %s: %s",
                len(message.payload), message.topic, message.key,
                self.stream, code,
            )
        self.given_up += len(failed)
        self.forwarded += len(batch) - len(failed)


# --- wiring: settings, MQTT, Kinesis -------------------------------------


def _env(name: str, default=None, *fallbacks: str):
    for candidate in (name, *fallbacks):
        if os.environ.get(candidate):
            return os.environ[candidate]
    return default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forwarder.py",
        description="Forward MQTT messages into Kinesis like the IoT rule.",
    )
    add = parser.add_argument
    add("--mqtt-host", default=_env("MQTT_HOST", "127.0.0.1"),
        help="MQTT broker host (MQTT_HOST)")
    add("--mqtt-port", type=int, default=_env("MQTT_PORT", "1883"),
        help="MQTT broker port (MQTT_PORT)")
    add("--topic", default=_env("MQTT_TOPIC", DEFAULT_TOPIC),
        help="topic filter to forward (MQTT_TOPIC)")
    add("--stream", default=_env("STREAM_NAME", DEFAULT_STREAM),
        help="Kinesis stream (STREAM_NAME)")
    add("--endpoint",
        default=_env("KINESIS_ENDPOINT", None, "LOCALSTACK_ENDPOINT"),
        help="Kinesis endpoint URL (KINESIS_ENDPOINT, LOCALSTACK_ENDPOINT); "
             "real AWS when unset")
    add("--region",
        default=_env("AWS_REGION", "us-east-1", "AWS_DEFAULT_REGION"),
        help="AWS region (AWS_REGION)")
    add("--partition-key",
        default=_env("FORWARDER_PARTITION_KEY", PRODUCTION_KEY),
        help="partition key template, e.g. iot, ${venId}, ${newuuid()}, "
             "${topic()} (FORWARDER_PARTITION_KEY)")
    add("--fallback-key",
        default=_env("FORWARDER_FALLBACK_KEY", PRODUCTION_KEY),
        help="key used when the template has no value for a message "
             "(FORWARDER_FALLBACK_KEY)")
    add("--linger-ms", type=int,
        default=_env("FORWARDER_LINGER_MS", str(DEFAULT_LINGER_MS)),
        help="how long to gather messages into one put (FORWARDER_LINGER_MS)")
    add("--max-batch", type=int,
        default=_env("FORWARDER_MAX_BATCH", str(MAX_BATCH_RECORDS)),
        help="records per PutRecords call, 1-500 (FORWARDER_MAX_BATCH)")
    add("--log-level", default=_env("LOG_LEVEL", "INFO"),
        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def make_kinesis(endpoint: str | None, region: str):
    import boto3

    credentials = {}
    if endpoint and not os.environ.get("AWS_ACCESS_KEY_ID"):
        # LocalStack accepts any credentials; real AWS uses the usual chain.
        credentials = {"aws_access_key_id": "test",
                       "aws_secret_access_key": "test"}
    return boto3.client("kinesis", endpoint_url=endpoint, region_name=region,
                        **credentials)


def check_stream(client, stream: str, endpoint: str | None) -> None:
    where = endpoint or "AWS"
    try:
        client.describe_stream_summary(StreamName=stream)
    except client.exceptions.ResourceNotFoundException:
        raise SetupError(f"stream {stream} does not exist at {where}") from None
    except botocore.exceptions.ClientError as exc:
        code, _ = _classify(exc)
        raise SetupError(f"Kinesis at {where} refused {stream}: {code}") from None
    except NETWORK_ERRORS as exc:
        raise SetupError(
            f"cannot reach Kinesis at {where} ({type(exc).__name__})"
        ) from None


def connect_mqtt(args, forwarder: Forwarder):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"iot-rule-forwarder-{uuid.uuid4().hex[:8]}",
    )
    where = f"{args.mqtt_host}:{args.mqtt_port}"

    def on_connect(client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.warning("MQTT broker %s refused the connection: %s",
                        where, reason)
            return
        # Subscribed on every (re)connect: the session is clean.
        client.subscribe(args.topic, qos=1)

    def on_subscribe(client, userdata, mid, reasons, properties):
        if any(reason.is_failure for reason in reasons):
            log.warning("MQTT broker %s refused the subscription to %s: %s",
                        where, args.topic, reasons)
            return
        log.info("forwarding %s from %s into stream %s (partition key %s)",
                 args.topic, where, forwarder.stream, forwarder.template.text)

    def on_disconnect(client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.warning("MQTT connection to %s lost (%s); reconnecting",
                        where, reason)

    def on_message(client, userdata, message):
        forwarder.accept(message.topic, message.payload)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    try:
        client.connect(args.mqtt_host, args.mqtt_port)
    except OSError as exc:
        raise SetupError(f"cannot reach MQTT broker {where}: {exc}") from None
    return client


def run(args, stop: threading.Event) -> Forwarder:
    """Forward until ``stop`` is set; then put what is held and return."""
    try:
        template = parse_template(args.partition_key, args.fallback_key)
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    if not 1 <= args.max_batch <= MAX_BATCH_RECORDS:
        raise SetupError(f"--max-batch must be 1-{MAX_BATCH_RECORDS}")
    if args.linger_ms < 0:
        raise SetupError("--linger-ms must be 0 or more")

    kinesis = make_kinesis(args.endpoint, args.region)
    check_stream(kinesis, args.stream, args.endpoint)
    forwarder = Forwarder(kinesis, args.stream, template,
                          args.linger_ms / 1000, args.max_batch)
    mqtt_client = connect_mqtt(args, forwarder)
    forwarder.start()
    mqtt_client.loop_start()

    stop.wait()
    log.info("stopping: unsubscribing, then putting what is held")
    mqtt_client.disconnect()
    mqtt_client.loop_stop()  # no message arrives after this
    forwarder.close()
    log.info("stopped: %d forwarded, %d given up",
             forwarder.forwarded, forwarder.given_up)
    return forwarder


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        run(args, stop)
    except SetupError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
