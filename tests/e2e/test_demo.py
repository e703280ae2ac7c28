"""``ven-worker demo`` as a user runs it: a subprocess against the test
PostgreSQL and LocalStack, with a small fleet so a run takes seconds. The
tables are checked directly, not only the demo's own reconciliation."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from worker.demo.services import SCHEMA_MARK

# Bounds for a loaded 2-core machine, not performance targets: a small run
# takes about 20 s here.
DEMO_DEADLINE_S = 300
OUTPUT_DEADLINE_S = 120

# 20 VENs for 8 s at x10: 16 rounds of 20 readings.
SMALL_RUN = ["--vens", "20", "--duration", "8", "--speed", "10",
             "--duplicates", "2", "--malformed", "5"]
SMALL_RUN_READINGS = 320

MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


@pytest.fixture
def demo_env(pg_url, schema_name, localstack_endpoint, kinesis_client,
             stack):
    stream = f"e2e-demo-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "DATABASE_URL": pg_url, "PG_SCHEMA": schema_name,
           "LOCALSTACK_ENDPOINT": localstack_endpoint, "STREAM_NAME": stream}
    yield env
    stack.delete_stream(kinesis_client, stream)


def run_demo(env: dict, run_dir: Path, *flags: str):
    return subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--run-dir", str(run_dir),
         *flags],
        env=env, capture_output=True, text=True, timeout=DEMO_DEADLINE_S)


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_tables_hold_what_was_sent(pg_url: str, schema: str, sent: dict):
    with psycopg.connect(pg_url) as conn:
        readings, shards = conn.execute(
            f'SELECT count(*), count(DISTINCT shard_id) '
            f'FROM "{schema}".ven_telemetry').fetchone()
        samples = conn.execute(
            f'SELECT count(*) FROM "{schema}".ven_load_samples').fetchone()[0]
        rejects = dict(conn.execute(
            f'SELECT reason_code, count(*) FROM "{schema}".ingest_rejects '
            f'GROUP BY reason_code').fetchall())
        duplicates = conn.execute(
            f'SELECT sum(duplicates_dropped) '
            f'FROM "{schema}".shard_leases').fetchone()[0]
        bad_bytes = [bytes(raw) for (raw,) in conn.execute(
            f'SELECT raw_data FROM "{schema}".ingest_rejects '
            f"WHERE reason_code = 'invalid_utf8'")]
        mark = conn.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
            "WHERE nspname = %s", (schema,)).fetchone()[0]

    assert readings == sent["readings"]
    assert shards == 4  # ${venId} keys spread the fleet over every shard
    assert samples == sent["load_samples"]
    assert rejects == sent["rejected"]
    assert duplicates == sent["duplicates"] > 0
    assert bad_bytes
    for raw in bad_bytes:  # kept byte for byte, invalid as sent
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    assert mark == SCHEMA_MARK


def test_demo_balances_and_the_tables_hold_what_was_sent(
        pg_url, schema_name, demo_env, tmp_path):
    run_dir = tmp_path / "run"

    done = run_demo(demo_env, run_dir, *SMALL_RUN)

    assert done.returncode == 0, done.stdout + done.stderr
    sent = summary_of(run_dir)["sent"]
    assert sent["readings"] == SMALL_RUN_READINGS
    assert sent["records"] == (sent["readings"] + sent["duplicates"]
                               + sum(sent["rejected"].values()))
    assert len(sent["rejected"]) == 9  # every reason the fleet can cause
    out = done.stdout
    assert (f"records sent {sent['records']:,} = stored "
            f"{sent['readings']:,} + duplicates {sent['duplicates']:,} + "
            f"rejected {sum(sent['rejected'].values()):,}  ok") in out
    for reason, count in sent["rejected"].items():
        assert re.search(rf"^ +{reason} +{count} +{count}  ok$", out, re.M)
    assert "BALANCED: every record sent is stored once" in out
    assert "demo-w1 exited 0, demo-w2 exited 0" in out
    assert (run_dir / "demo-w1.log").stat().st_size > 0
    assert (run_dir / "demo-w2.log").stat().st_size > 0
    assert_tables_hold_what_was_sent(pg_url, schema_name, sent)


def broker_reachable() -> bool:
    try:
        socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not broker_reachable(),
                    reason=f"no MQTT broker on {MQTT_HOST}:{MQTT_PORT}")
def test_demo_through_mqtt_and_the_forwarder_balances(
        pg_url, schema_name, demo_env, tmp_path):
    run_dir = tmp_path / "run"

    done = run_demo(demo_env, run_dir, *SMALL_RUN, "--via", "mqtt",
                    "--mqtt-host", MQTT_HOST, "--mqtt-port", str(MQTT_PORT))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "BALANCED" in done.stdout
    assert "through the IoT-rule forwarder" in done.stdout
    assert "stopped: " in (run_dir / "forwarder.log").read_text()
    sent = summary_of(run_dir)["sent"]
    assert sent["readings"] == SMALL_RUN_READINGS
    assert_tables_hold_what_was_sent(pg_url, schema_name, sent)


def test_demo_refuses_to_drop_a_schema_it_did_not_make(
        pg_url, schema_name, tmp_path):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema_name}"')
        conn.execute(f'CREATE TABLE "{schema_name}".precious (x int)')
    env = {**os.environ, "DATABASE_URL": pg_url, "PG_SCHEMA": schema_name}

    done = run_demo(env, tmp_path / "run")

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"ven-worker: error: schema {schema_name} holds 1 tables or other "
        f"objects the demo did not create; the demo drops its schema at "
        f"start, so set PG_SCHEMA to another name (or drop {schema_name} "
        f"yourself)"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(
            f'SELECT count(*) FROM "{schema_name}".precious').fetchone() == (0,)


def wait_for_output(path: Path, pattern: str, process) -> re.Match:
    pause = threading.Event()
    deadline = time.monotonic() + OUTPUT_DEADLINE_S
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text(), re.M)
        if found:
            return found
        assert process.poll() is None, path.read_text()
        pause.wait(0.2)
    raise AssertionError(f"no {pattern!r} in:\n{path.read_text()}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["ctrl-c", "sigterm"])
def test_interrupt_stops_the_workers_and_exits_130(demo_env, tmp_path,
                                                   signum):
    out_path = tmp_path / "out.txt"
    with open(out_path, "w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "worker", "demo", "--vens", "20",
             "--duration", "600", "--run-dir", str(tmp_path / "run")],
            env=demo_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_output(out_path, r"^ +\d+s +\d", demo)  # a progress line
        pids = [int(pid) for pid in re.findall(
            r"demo-w\d --shards \d/2 \(pid (\d+)\)", out_path.read_text())]

        demo.send_signal(signum)
        code = demo.wait(OUTPUT_DEADLINE_S)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

    text = out_path.read_text()
    assert code == 130, text
    assert len(pids) == 2
    assert "interrupted: stopping the fleet and the workers" in text
    assert not [pid for pid in pids if pid_alive(pid)], text


def test_mqtt_without_a_broker_is_one_line_and_exit_2(pg_url, schema_name,
                                                       tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": pg_url, "PG_SCHEMA": schema_name}

    done = run_demo(env, tmp_path / "run", "--via", "mqtt",
                    "--mqtt-port", str(port))

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"ven-worker: error: --via mqtt needs an MQTT broker, and none "
        f"answers at 127.0.0.1:{port} (Connection refused); start one or "
        f"use --via put"]
    assert "(pid " not in done.stdout  # nothing was started
