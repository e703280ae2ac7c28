"""A stand-in Kinesis endpoint for the benchmarks that measure the worker
rather than an emulator: a stdlib HTTP server speaking the Kinesis JSON
protocol (DescribeStreamSummary, ListShards, GetShardIterator, GetRecords,
PutRecords), with base64 ``Data`` as the real API sends it.

Run:  .venv/bin/python bench/fake_kinesis.py --shards 8 --backlog 500000

It prints ``port N`` once it listens and serves until SIGTERM or SIGINT.
``--gated`` hides the backlog until ``GET /release``, so a benchmark can
start the worker, let it settle, and only then start the clock. ``GET
/stats`` answers counters as JSON.

The backlog is ``--backlog`` readings from bench/readings.py, placed on
shards by the MD5 of the venId as Kinesis does with a ``${venId}`` key.
Pages are made when asked for (deterministically, so a re-read gets the same
bytes) instead of held in memory: 500,000 readings would be about 900 MB of
JSON. What this endpoint does not do: enforce per-shard limits (5 calls/s,
2 MB/s) or the 10 MiB cap on a GetRecords answer (10,000 of these readings
are about 13 MB, so real pages would hold about 7,900), reshard, or expire
iterators.
"""

import argparse
import base64
import hashlib
import json
import resource
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from readings import reading, ven_id  # noqa: E402

STREAM = "bench-stream"
TARGET_PREFIX = "Kinesis_20131202."
CONTENT_TYPE = "application/x-amz-json-1.1"

# The largest page GetRecords returns, as in the real API.
MAX_LIMIT = 10_000

HASH_SPACE = 2**128


def sequence_number(shard: int, position: int) -> str:
    """56 digits like the real ones; numeric and text order agree."""
    return f"49{shard:06d}{position:048d}"


def position_of(sequence: str) -> int:
    return int(sequence[8:])


class Shard:
    def __init__(self, index: int, count: int):
        self.index = index
        self.shard_id = f"shardId-{index:012d}"
        width = HASH_SPACE // count
        self.start_key = index * width
        self.end_key = HASH_SPACE - 1 if index == count - 1 else (
            (index + 1) * width - 1)
        self.backlog: list[int] = []  # reading indices, in order
        self.backlog_arrival = time.time()
        self.live: list[bytes] = []  # record fragments put at run time
        self.live_arrivals: list[float] = []

    def fragment(self, position: int) -> bytes:
        """One record of a GetRecords answer, as JSON."""
        if position >= len(self.backlog):
            return self.live[position - len(self.backlog)]
        i = self.backlog[position]
        return record_json(sequence_number(self.index, position),
                           self.backlog_arrival,
                           base64.b64encode(reading(i)), ven_id(i))

    def arrival(self, position: int) -> float:
        if position < len(self.backlog):
            return self.backlog_arrival
        return self.live_arrivals[position - len(self.backlog)]


def record_json(sequence: str, arrived: float, data_b64: bytes,
                key: str) -> bytes:
    return b"".join((
        b'{"SequenceNumber":"', sequence.encode(),
        b'","ApproximateArrivalTimestamp":', f"{arrived:.3f}".encode(),
        b',"Data":"', data_b64, b'","PartitionKey":',
        json.dumps(key).encode(), b"}",
    ))


class KinesisError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


class FakeStream:
    """The stream's state and the answer to each operation."""

    def __init__(self, shards: int, backlog: int, gated: bool):
        self.shards = [Shard(n, shards) for n in range(shards)]
        for i in range(backlog):
            self.shard_for(ven_id(i)).backlog.append(i)
        self.released = threading.Event()
        if not gated:
            self.released.set()
        self.created = time.time()
        self.lock = threading.Lock()
        self.stats = {"get_records": 0, "records_served": 0,
                      "records_put": 0}

    def shard_for(self, key: str) -> Shard:
        hashed = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
        return self.shards[hashed * len(self.shards) // HASH_SPACE]

    def release(self) -> None:
        for shard in self.shards:
            shard.backlog_arrival = time.time()
        self.released.set()

    def available(self, shard: Shard) -> int:
        if not self.released.is_set():
            return 0
        with self.lock:
            return len(shard.backlog) + len(shard.live)

    def _shard(self, shard_id: str) -> Shard:
        for shard in self.shards:
            if shard.shard_id == shard_id:
                return shard
        raise KinesisError(400, "ResourceNotFoundException",
                           f"shard {shard_id} not found")

    def _check_stream(self, request: dict) -> None:
        if request.get("StreamName", STREAM) != STREAM:
            raise KinesisError(400, "ResourceNotFoundException",
                               f"stream {request.get('StreamName')} not found")

    # -- operations: request dict -> response bytes ----------------------

    def describe_stream_summary(self, request: dict) -> bytes:
        self._check_stream(request)
        return json.dumps({"StreamDescriptionSummary": {
            "StreamName": STREAM,
            "StreamARN": f"arn:aws:kinesis:us-east-1:000000000000:stream/"
                         f"{STREAM}",
            "StreamStatus": "ACTIVE", "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": self.created,
            "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
            "EncryptionType": "NONE", "OpenShardCount": len(self.shards),
            "ConsumerCount": 0,
        }}).encode()

    def list_shards(self, request: dict) -> bytes:
        self._check_stream(request)
        return json.dumps({"Shards": [{
            "ShardId": s.shard_id,
            "HashKeyRange": {"StartingHashKey": str(s.start_key),
                             "EndingHashKey": str(s.end_key)},
            "SequenceNumberRange": {
                "StartingSequenceNumber": sequence_number(s.index, 0)},
        } for s in self.shards]}).encode()

    def get_shard_iterator(self, request: dict) -> bytes:
        self._check_stream(request)
        shard = self._shard(request["ShardId"])
        kind = request["ShardIteratorType"]
        if kind in ("TRIM_HORIZON", "AT_TIMESTAMP"):
            position = 0
        elif kind == "LATEST":
            position = self.available(shard)
        elif kind == "AT_SEQUENCE_NUMBER":
            position = position_of(request["StartingSequenceNumber"])
        elif kind == "AFTER_SEQUENCE_NUMBER":
            position = position_of(request["StartingSequenceNumber"]) + 1
        else:
            raise KinesisError(400, "InvalidArgumentException", kind)
        iterator = f"{shard.index}:{position}"
        return json.dumps({"ShardIterator": iterator}).encode()

    def get_records(self, request: dict) -> bytes:
        try:
            index, position = (int(p) for p in
                               request["ShardIterator"].split(":"))
            shard = self.shards[index]
        except (ValueError, IndexError):
            raise KinesisError(400, "InvalidArgumentException",
                               "not an iterator of this stream") from None
        limit = min(int(request.get("Limit", MAX_LIMIT)), MAX_LIMIT)
        end = min(self.available(shard), position + limit)
        records = b",".join(shard.fragment(p) for p in range(position, end))
        behind = 0
        if end < self.available(shard):
            behind = max(1, int((time.time() - shard.arrival(end)) * 1000))
        with self.lock:
            self.stats["get_records"] += 1
            self.stats["records_served"] += end - position
        return b"".join((
            b'{"Records":[', records, b'],"NextShardIterator":"',
            f"{index}:{end}".encode(), b'","MillisBehindLatest":',
            str(behind).encode(), b"}",
        ))

    def put_records(self, request: dict) -> bytes:
        self._check_stream(request)
        results = []
        now = time.time()
        with self.lock:
            for entry in request["Records"]:
                shard = self.shard_for(entry["PartitionKey"])
                position = len(shard.backlog) + len(shard.live)
                sequence = sequence_number(shard.index, position)
                shard.live.append(record_json(
                    sequence, now, entry["Data"].encode(),
                    entry["PartitionKey"]))
                shard.live_arrivals.append(now)
                results.append({"SequenceNumber": sequence,
                                "ShardId": shard.shard_id})
            self.stats["records_put"] += len(results)
        return json.dumps({"FailedRecordCount": 0,
                           "Records": results}).encode()


OPERATIONS = {
    "DescribeStreamSummary": FakeStream.describe_stream_summary,
    "ListShards": FakeStream.list_shards,
    "GetShardIterator": FakeStream.get_shard_iterator,
    "GetRecords": FakeStream.get_records,
    "PutRecords": FakeStream.put_records,
}


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as botocore's connection pool expects.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on,
    # the body then waits for the client's delayed ACK, 40 ms a call.
    disable_nagle_algorithm = True
    stream: FakeStream  # set on the subclass made by serve()

    def log_message(self, format, *args) -> None:
        pass  # one line per call would cost more than the call

    def _answer(self, status: int, body: bytes,
                content_type: str = CONTENT_TYPE) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        target = self.headers.get("X-Amz-Target", "")
        operation = OPERATIONS.get(target.removeprefix(TARGET_PREFIX))
        try:
            if operation is None:
                raise KinesisError(400, "UnknownOperationException", target)
            self._answer(200, operation(self.stream, json.loads(body)))
        except KinesisError as exc:
            self._answer(exc.status, json.dumps(
                {"__type": exc.code, "message": str(exc)}).encode())
        except Exception as exc:  # a bug here: say so, as AWS would
            self._answer(500, json.dumps(
                {"__type": "InternalFailure", "message": repr(exc)}).encode())

    def do_GET(self) -> None:
        if self.path == "/release":
            self.stream.release()
            self._answer(200, b"released\n", "text/plain")
        elif self.path == "/stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats = dict(self.stream.stats,
                         cpu_s=usage.ru_utime + usage.ru_stime)
            self._answer(200, json.dumps(stats).encode(), "application/json")
        else:
            self._answer(404, b"not found\n", "text/plain")


def serve(stream: FakeStream, port: int = 0) -> ThreadingHTTPServer:
    handler = type("StreamHandler", (Handler,), {"stream": stream})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=0,
                        help="readings waiting in the stream")
    parser.add_argument("--gated", action="store_true",
                        help="hide the backlog until GET /release")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    stream = FakeStream(args.shards, args.backlog, args.gated)
    server = serve(stream, args.port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"port {server.server_address[1]}", flush=True)
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
