"""What the demo sets up before the fleet starts: its own schema, LocalStack
and an empty stream."""

import importlib.util
import logging
import socket
import sys
import threading
import time
from pathlib import Path

import psycopg

from worker.db.connect import check_schema_name, connect
from worker.demo.options import DEFAULT_SCHEMA, UNSAFE_SCHEMAS
from worker.errors import ConfigError, WorkerError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "localstack"

# Written on the schema the demo creates. A schema without it that holds
# anything is someone's data, and the demo refuses to drop it.
SCHEMA_MARK = "ven-worker demo: dropped and re-created by every demo run"

# Kinesis deletes a stream asynchronously; LocalStack takes about a second.
STREAM_GONE_DEADLINE_S = 60.0
STREAM_GONE_POLL_S = 0.25

# A local broker accepts a connection at once; a wrong host fails here fast.
BROKER_CONNECT_TIMEOUT_S = 5.0

# CreateStream is repeated when the new stream vanishes before it is ACTIVE
# (see _create_and_wait); a third failure is not a passing glitch.
CREATE_ATTEMPTS = 3


def demo_schema(configured: str) -> str:
    """The schema the demo uses: the configured one, unless that is a
    schema real data lives in by default."""
    if configured in UNSAFE_SCHEMAS:
        return DEFAULT_SCHEMA
    return check_schema_name(configured)


def reset_schema(url: str, schema: str) -> None:
    """Drop and re-create ``schema`` so this run's counts start at zero.
    Refuses a schema the demo did not make that holds anything."""
    check_schema_name(schema)
    with connect(url, "public", "ven-worker demo", autocommit=True) as conn:
        row = conn.execute(
            "SELECT obj_description(n.oid, 'pg_namespace'), "
            "(SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid) "
            "FROM pg_namespace n WHERE nspname = %s", (schema,)).fetchone()
        if row is not None and row[0] != SCHEMA_MARK and row[1] > 0:
            raise ConfigError(
                f"schema {schema} holds {row[1]} tables or other objects the "
                f"demo did not create; the demo drops its schema at start, "
                f"so set PG_SCHEMA to another name (or drop {schema} "
                f"yourself)")
        try:
            with conn.transaction():
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                conn.execute(f'CREATE SCHEMA "{schema}"')
                conn.execute(f'COMMENT ON SCHEMA "{schema}" IS '
                             f"'{SCHEMA_MARK}'")
        except psycopg.Error as exc:
            raise ConfigError(f"cannot re-create schema {schema}: "
                              f"{str(exc).strip().splitlines()[0]}") from exc


def check_broker(host: str, port: int) -> None:
    """Before anything starts: --via mqtt without a broker is a setting to
    fix, not a failure halfway through the run."""
    try:
        socket.create_connection((host, port),
                                 timeout=BROKER_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"--via mqtt needs an MQTT broker, and none answers "
                          f"at {host}:{port} ({exc.strerror or exc}); start "
                          f"one or use --via put") from exc


def load_stack():
    """localstack/stack.py as a module. That folder is deliberately not a
    package (it would shadow LocalStack itself), so it is loaded by path,
    under the same module name the test fixtures use."""
    name = "ls_stack"
    if name in sys.modules:
        return sys.modules[name]
    path = SCRIPTS / "stack.py"
    if not path.exists():
        raise ConfigError(f"the demo needs {path} (a clone of the repository, "
                          "not an installed wheel)")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def recreate_stream(stack, client, name: str, shards: int) -> bool:
    """An empty, ACTIVE stream of ``shards`` shards. Returns True when an
    older stream of that name was deleted first: its records would be read
    too and unbalance the reconciliation."""
    existed = _delete_and_wait(client, name)
    state = _create_and_wait(stack, client, name, shards)
    if state.open_shards != shards:
        raise WorkerError(f"stream {name} has {state.open_shards} open shards "
                          f"after creation, not {shards}")
    return existed


def _create_and_wait(stack, client, name: str, shards: int):
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            return stack.create_stream(client, name, shards)
        except client.exceptions.ResourceNotFoundException:
            # A stream deleted just before can take the new one with it
            # on LocalStack: accepted, then not found while turning ACTIVE.
            log.warning("stream %s vanished after CreateStream (attempt %d)",
                        name, attempt)
    raise WorkerError(f"stream {name} could not be created: it vanished "
                      f"after CreateStream {CREATE_ATTEMPTS} times")


def _delete_and_wait(client, name: str) -> bool:
    # NOTE: asked first, because LocalStack was seen to remove a stream
    # created right after a DeleteStream that had answered "not found".
    try:
        client.describe_stream_summary(StreamName=name)
    except client.exceptions.ResourceNotFoundException:
        return False
    try:
        client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    except client.exceptions.ResourceNotFoundException:
        return False
    pause = threading.Event()  # never set: a wait that Ctrl-C can cut
    deadline = time.monotonic() + STREAM_GONE_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            client.describe_stream_summary(StreamName=name)
        except client.exceptions.ResourceNotFoundException:
            return True
        pause.wait(STREAM_GONE_POLL_S)
    raise WorkerError(f"stream {name} still exists "
                      f"{STREAM_GONE_DEADLINE_S:.0f} s after DeleteStream")
