"""Getting the fleet's records into the stream: straight into Kinesis
(PutRecords), or through an MQTT broker and the IoT-rule forwarder.

Either way a record is counted as sent only once it was accepted (by
Kinesis, or acknowledged by the broker at QoS 1), so the tally never counts
a record the worker could not have seen.
"""

import logging
import threading
import uuid
from collections.abc import Callable

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from worker.demo.fleet import Outgoing
from worker.errors import ConfigError, WorkerError
from worker.kinesis.client import (
    SERVER_CODES,
    THROTTLING_CODES,
    RetriableKinesisError,
    classify,
)

log = logging.getLogger(__name__)

OnAccepted = Callable[[list[Outgoing]], None]

# Kinesis takes at most 500 records and 5 MiB per PutRecords call.
PUT_MAX_RECORDS = 500
PUT_MAX_BYTES = 5 * 1024 * 1024

# Throttled or failed puts are retried with full jitter from 100 ms up to
# 5 s; twelve attempts ride out about half a minute of trouble, longer than
# LocalStack ever stalls here, before the demo gives up with an error.
PUT_BACKOFF_INITIAL_S = 0.1
PUT_BACKOFF_MAX_S = 5.0
PUT_MAX_ATTEMPTS = 12

# QoS 1 messages in flight before paho waits for acknowledgements: a round
# of the default fleet (200) goes out without waiting on the broker.
MQTT_MAX_INFLIGHT = 500

# A local broker acknowledges in milliseconds; this only bounds a broker
# that went away mid-run.
MQTT_ACK_TIMEOUT_S = 30


class PutPublisher:
    """PutRecords in chunks, retrying the entries Kinesis refused."""

    def __init__(self, client, stream: str, on_accepted: OnAccepted,
                 stop: threading.Event,
                 backoff_initial_s: float = PUT_BACKOFF_INITIAL_S):
        self._client = client
        self._stream = stream
        self._on_accepted = on_accepted
        self._stop = stop
        self._backoff_initial_s = backoff_initial_s  # tests shrink it

    def publish(self, records: list[Outgoing]) -> None:
        for chunk in _chunks(records):
            self._put_with_retry(chunk)

    def close(self) -> None:
        pass

    def _put_with_retry(self, chunk: list[Outgoing]) -> None:
        pending = list(chunk)

        def attempt() -> None:
            pending[:] = self._do_put(pending)
            if pending:
                raise RetriableKinesisError(
                    "throttled", f"{len(pending)} records refused")

        retrying = Retrying(
            retry=retry_if_exception_type(RetriableKinesisError),
            wait=wait_random_exponential(multiplier=self._backoff_initial_s,
                                         max=PUT_BACKOFF_MAX_S),
            stop=(stop_after_attempt(PUT_MAX_ATTEMPTS)
                  | (lambda state: self._stop.is_set())),
            sleep=self._stop.wait,
            reraise=True,
        )
        retrying(attempt)

    def _do_put(self, records: list[Outgoing]) -> list[Outgoing]:
        """One PutRecords call: counts what Kinesis accepted and returns the
        entries it refused for a reason worth retrying."""
        entries = [{"Data": r.data, "PartitionKey": r.key} for r in records]
        try:
            answer = self._client.put_records(StreamName=self._stream,
                                              Records=entries)
        except Exception as exc:  # translated, never swallowed
            translated = classify(exc)
            if translated is exc:
                raise
            raise translated from exc
        results = answer["Records"]
        self._on_accepted([r for r, res in zip(records, results)
                           if "ErrorCode" not in res])
        failed = [(r, res["ErrorCode"]) for r, res in zip(records, results)
                  if "ErrorCode" in res]
        codes = sorted({code for _, code in failed})
        if set(codes) - THROTTLING_CODES - SERVER_CODES:
            raise WorkerError(f"Kinesis refused {len(failed)} records of "
                              f"{self._stream}: {', '.join(codes)}")
        if failed:
            log.debug("retrying %d of %d records: %s", len(failed),
                      len(records), ", ".join(codes))
        return [r for r, _ in failed]


def _chunks(records: list[Outgoing]):
    chunk, size = [], 0
    for record in records:
        record_size = len(record.data) + len(record.key)
        if chunk and (len(chunk) == PUT_MAX_RECORDS
                      or size + record_size > PUT_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk


class MqttPublisher:
    """Publishes each record's bytes on ``topic`` at QoS 1; the forwarder
    (localstack/forwarder.py, standing in for the IoT rule) puts them into
    the stream with a ``${venId}`` partition key."""

    def __init__(self, host: str, port: int, topic: str,
                 on_accepted: OnAccepted):
        import paho.mqtt.client as mqtt

        self._topic = topic
        self._on_accepted = on_accepted
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=f"ven-demo-{uuid.uuid4().hex[:8]}")
        self._client.max_inflight_messages_set(MQTT_MAX_INFLIGHT)
        try:
            self._client.connect(host, port)
        except OSError as exc:
            raise ConfigError(f"--via mqtt needs an MQTT broker: cannot reach "
                              f"{host}:{port} ({exc})") from exc
        self._client.loop_start()

    def publish(self, records: list[Outgoing]) -> None:
        sent = [self._client.publish(self._topic, r.data, qos=1)
                for r in records]
        for record, info in zip(records, sent):
            info.wait_for_publish(timeout=MQTT_ACK_TIMEOUT_S)
            if not info.is_published():
                raise WorkerError(f"the MQTT broker did not acknowledge a "
                                  f"message within {MQTT_ACK_TIMEOUT_S} s "
                                  f"(rc {info.rc})")
        self._on_accepted(records)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
