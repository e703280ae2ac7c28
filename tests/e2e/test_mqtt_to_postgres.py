"""The whole path: a real MQTT publisher on volttron/metering -> the IoT-rule
forwarder -> LocalStack Kinesis -> a worker process -> PostgreSQL."""

import signal
from pathlib import Path

import orjson
import psycopg

from tests.e2e.worker_harness import (  # noqa: F401 (start_worker fixture)
    reading,
    start_worker,
    stored_count,
    wait_until,
)

CONTRACT = Path(__file__).resolve().parents[1] / "fixtures" / "contract"


def test_mqtt_messages_reach_postgres_through_the_rule_and_the_worker(
        pg_url, migrated_schema, make_stream, start_forwarder, mqtt_publish,
        start_worker):
    stream = make_stream(2)
    forwarder = start_forwarder(stream, "--partition-key", "${venId}")
    worker = start_worker("w-mqtt", stream)

    fleet = [orjson.dumps(reading(v, s)) for v in range(10) for s in range(5)]
    shapes = {name: (CONTRACT / f"{name}.json").read_bytes()
              for name in ("contract-1.0", "panel-ven", "early-ven",
                           "not-metering")}
    broken = b'{"venId": "ven-x", "timestamp": 1764547200, "usedPowerKw": NaN}'
    mqtt_publish(fleet + list(shapes.values()) + [broken])

    expected_readings = len(fleet) + 3  # three contract shapes are readings
    wait_until(lambda: stored_count(pg_url, migrated_schema)
               >= expected_readings, f"{expected_readings} readings stored")

    with psycopg.connect(pg_url) as conn:
        conn.execute(f'SET search_path = "{migrated_schema}"')
        row = conn.execute(
            "SELECT used_power_kw, shed_power_kw, event_id, battery_soc, "
            "raw_payload->>'schemaVersion', "
            "(SELECT count(*) FROM ven_load_samples s "
            " WHERE s.telemetry_id = t.id) "
            "FROM ven_telemetry t WHERE ven_id = 'ven-0042'").fetchone()
        assert row == (3.18, 0.75, "evt-2025-12-01-a", 0.61, "1.0", 3)
        panel = conn.execute(
            "SELECT count(*) FROM ven_load_samples s JOIN ven_telemetry t "
            "ON s.telemetry_id = t.id WHERE t.ven_id = 'ven-panel-7'"
        ).fetchone()[0]
        assert panel == 5
        wait_until(lambda: conn.execute(
            "SELECT count(*) FROM ingest_rejects").fetchone()[0] == 2,
            "two rejects")
        rejects = dict(conn.execute(
            "SELECT reason_code, raw_data FROM ingest_rejects").fetchall())
    assert rejects["not_metering"] == shapes["not-metering"]
    assert rejects["non_finite_number"] == broken  # byte for byte

    assert forwarder.stop() == 0
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
