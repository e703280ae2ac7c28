"""End-to-end fixtures: LocalStack's Kinesis, throwaway streams, the IoT-rule
forwarder and an MQTT publisher.

Every test in this folder is marked ``e2e``. LocalStack comes from
localstack/stack.py: LOCALSTACK_ENDPOINT when set, else whatever answers on
127.0.0.1:4566, else one started for the session (installed on first use,
about a minute and a half). A LocalStack started by a session is stopped when
the last session using it ends, so sessions that run at the same time share
one and never stop it under each other.
"""

import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from localstack_scripts import SCRIPTS, load_script

ROOT = SCRIPTS.parent

# Generous waits for things that take a second or two here; a slow CI
# machine must not turn them into failures.
READ_DEADLINE_S = 60
FORWARDER_READY_S = 30
FORWARDER_EXIT_S = 60

MQTT_HOST = "127.0.0.1"
MQTT_PORT = 1883
METERING_TOPIC = "volttron/metering"

_stack = load_script("stack")


def pytest_collection_modifyitems(items):
    """Every test under tests/e2e/ is marked e2e (``-m "not e2e"`` skips
    them all), whoever wrote it."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


# --- LocalStack and streams ----------------------------------------------


@pytest.fixture(scope="session")
def localstack_endpoint():
    try:
        up = _stack.start_or_reuse("session")
    except _stack.StackError as exc:
        pytest.fail(f"LocalStack unavailable: {exc}", pytrace=False)
    yield up.endpoint
    _stack.release_and_maybe_stop()


@pytest.fixture(scope="session")
def stack():
    """localstack/stack.py as a module (create_stream, StreamState, ...)."""
    return _stack


@pytest.fixture(scope="session")
def scripts_dir() -> Path:
    return SCRIPTS


@pytest.fixture(scope="session")
def kinesis_client(localstack_endpoint):
    return _stack.make_client(localstack_endpoint)


@pytest.fixture
def make_stream(kinesis_client):
    """make_stream(shards=1) -> name of a new ACTIVE stream, deleted after
    the test. Names are unique: sessions run side by side."""
    made = []

    def make(shards: int = 1) -> str:
        name = f"e2e-{uuid.uuid4().hex[:12]}"
        made.append(name)
        _stack.create_stream(kinesis_client, name, shards)
        return name

    yield make
    for name in made:
        _stack.delete_stream(kinesis_client, name)


@pytest.fixture
def stream(request, make_stream):
    """A fresh 1-shard stream; ``@pytest.mark.parametrize("stream", [4],
    indirect=True)`` asks for another shard count."""
    return make_stream(getattr(request, "param", 1))


@pytest.fixture
def read_stream(kinesis_client):
    """read_stream(name, count, match=None) -> the first ``count`` records
    (those for which ``match(record)`` holds, when given), reading every
    shard from TRIM_HORIZON. Each shard's records keep their order; shards
    follow one another by shard id. Fails when the deadline passes first.
    With count=None: one pass over every shard, whatever is there now."""

    def read(name: str, count: int | None, match=None) -> list[dict]:
        iterators = {
            shard["ShardId"]: kinesis_client.get_shard_iterator(
                StreamName=name, ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            for shard in kinesis_client.list_shards(StreamName=name)["Shards"]
        }
        found: dict[str, list[dict]] = {shard: [] for shard in iterators}
        pause = threading.Event()
        deadline = time.monotonic() + READ_DEADLINE_S
        while time.monotonic() < deadline:
            for shard, iterator in list(iterators.items()):
                if iterator is None:
                    continue
                page = kinesis_client.get_records(ShardIterator=iterator)
                iterators[shard] = page.get("NextShardIterator")
                for record in page["Records"]:
                    if match is None or match(record):
                        found[shard].append({**record, "ShardId": shard})
            records = [r for shard in sorted(found) for r in found[shard]]
            if count is None:
                return records
            if len(records) >= count:
                return records[:count]
            pause.wait(0.2)
        pytest.fail(
            f"{name}: {len(records)} of {count} records after "
            f"{READ_DEADLINE_S} s"
        )

    return read


# --- MQTT and the forwarder ----------------------------------------------


@pytest.fixture
def mqtt_publish():
    """mqtt_publish(payloads, topic=volttron/metering): publish each payload
    at QoS 1 and return once the broker has acknowledged them all."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"e2e-publisher-{uuid.uuid4().hex[:8]}",
    )
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()

    def publish(payloads, topic: str = METERING_TOPIC) -> None:
        sent = [client.publish(topic, payload, qos=1) for payload in payloads]
        for info in sent:
            info.wait_for_publish(timeout=READ_DEADLINE_S)
            assert info.is_published(), f"broker did not ack mid {info.mid}"

    yield publish
    client.disconnect()
    client.loop_stop()


class ForwarderProcess:
    """localstack/forwarder.py running as a subprocess, its log in a file."""

    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, count: int = 1,
                     deadline_s: float = FORWARDER_READY_S) -> None:
        """Wait until ``text`` appears ``count`` times in the log."""
        pause = threading.Event()
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.process.poll() is not None:
                break
            pause.wait(0.1)
        pytest.fail(f"forwarder log lacks {count} x {text!r}:\n{self.log()}")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal it and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=FORWARDER_EXIT_S)


@pytest.fixture
def start_forwarder(localstack_endpoint, tmp_path):
    """start_forwarder(stream, *flags) -> ForwarderProcess, subscribed and
    ready; stopped (by its pid) after the test if still running."""
    started: list[ForwarderProcess] = []

    def start(stream_name: str, *flags: str) -> ForwarderProcess:
        log_path = tmp_path / f"forwarder-{len(started)}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, str(SCRIPTS / "forwarder.py"),
                 "--stream", stream_name, "--endpoint", localstack_endpoint,
                 "--mqtt-host", MQTT_HOST, "--mqtt-port", str(MQTT_PORT),
                 *flags],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )
        forwarder = ForwarderProcess(process, log_path)
        started.append(forwarder)
        forwarder.wait_for_log("forwarding ")
        return forwarder

    yield start
    for forwarder in started:
        if forwarder.process.poll() is None:
            forwarder.process.kill()
            forwarder.process.wait()
