"""One test per payload shape in the contract (tests/fixtures), asserting the values
that must be stored (see the contract README)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.records import (
    SAMPLE_COLUMNS,
    Reading,
    Reason,
    RecordMeta,
    Reject,
    decode_record,
)

CONTRACT = Path(__file__).resolve().parents[1] / "fixtures" / "contract"

META = RecordMeta("shardId-000000000000", "49590", 0,
                  datetime(2025, 12, 1, 0, 1, tzinfo=UTC), "ven-0042")


def decode_file(name: str) -> tuple[bytes, Reading | Reject]:
    data = (CONTRACT / name).read_bytes()
    return data, decode_record(data, META)


def sample_dicts(reading: Reading) -> list[dict]:
    return [dict(zip(SAMPLE_COLUMNS, sample)) for sample in reading.samples]


def test_decode_contract_1_0_stores_reading_and_three_loads():
    data, reading = decode_file("contract-1.0.json")

    assert isinstance(reading, Reading)
    assert reading.ven_id == "ven-0042"
    assert reading.timestamp == datetime(2025, 12, 1, tzinfo=UTC)
    assert reading.timestamp.utcoffset().total_seconds() == 0
    assert reading.used_power_kw == 3.18
    assert reading.shed_power_kw == 0.75
    assert reading.requested_reduction_kw == 1.0
    assert reading.baseline_power_kw == 3.93
    assert reading.event_id == "evt-2025-12-01-a"
    assert reading.battery_soc == 0.61
    assert reading.meta is META
    # The record's own text, not a re-serialization.
    assert reading.raw_payload == data.decode()

    samples = sample_dicts(reading)
    assert [s["load_id"] for s in samples] == ["hvac1", "ev1", "pv1"]
    hvac, ev, pv = samples
    assert hvac == {
        "load_id": "hvac1", "name": "HVAC", "type": "hvac",
        "capacity_kw": 4.0, "current_power_kw": 1.42,
        "shed_capability_kw": 0.6, "enabled": True, "priority": 1,
        "raw_payload": hvac["raw_payload"],
    }
    assert ev["enabled"] is False and ev["priority"] == 3
    assert pv["current_power_kw"] == -2.1  # generation is negative
    assert json.loads(pv["raw_payload"]) == json.loads(data)["loads"][2]


def test_decode_panel_ven_maps_circuits_to_samples():
    data, reading = decode_file("panel-ven.json")

    assert isinstance(reading, Reading)
    assert reading.ven_id == "ven-panel-7"
    assert reading.timestamp == datetime(2025, 12, 1, 0, 0, 5, tzinfo=UTC)
    assert reading.used_power_kw == 19.4
    assert reading.event_id is None

    samples = sample_dicts(reading)
    assert len(samples) == 5
    circuits = json.loads(data)["circuits"]
    for sample, circuit in zip(samples, circuits):
        assert sample["load_id"] == circuit["id"]
        assert sample["name"] == circuit["name"]
        assert sample["current_power_kw"] == circuit["currentKw"]
        # breakerAmps x panelVoltage (240 V) / 1000
        assert sample["capacity_kw"] == circuit["breakerAmps"] * 240 / 1000
        assert sample["enabled"] is True
        assert json.loads(sample["raw_payload"]) == circuit
    assert [s["capacity_kw"] for s in samples] == [7.2, 7.2, 7.2, 9.6, 3.6]


def test_decode_early_ven_keeps_total_power_as_sent():
    _, reading = decode_file("early-ven.json")

    assert isinstance(reading, Reading)
    assert reading.ven_id == "ven-001"
    assert reading.timestamp == datetime(2025, 12, 1, 0, 0, 10, 250000,
                                         tzinfo=UTC)
    assert reading.used_power_kw == 5000.5
    samples = sample_dicts(reading)
    assert [(s["load_id"], s["current_power_kw"]) for s in samples] == [
        ("c1", 1200.0), ("c2", 3800.5),
    ]
    assert samples[0]["raw_payload"] == '{"id":"c1","power":1200.0}'


def test_decode_rule_enriched_keeps_extra_keys_in_raw_payload():
    data, reading = decode_file("rule-enriched.json")

    assert isinstance(reading, Reading)
    assert reading.ven_id == "ven-0042"
    assert reading.timestamp == datetime(2025, 12, 1, 0, 0, 15, tzinfo=UTC)
    assert reading.used_power_kw == 3.2
    assert reading.samples == []
    stored = json.loads(reading.raw_payload)
    assert stored["topic"] == "volttron/metering"
    assert stored["clientId"] == "ven-0042"
    assert stored["receivedAt"] == 1764547215342


def test_decode_not_metering_is_rejected_with_raw_bytes():
    data, reject = decode_file("not-metering.json")

    assert isinstance(reject, Reject)
    assert reject.reason is Reason.NOT_METERING
    assert reject.raw == data
    assert reject.meta is META


@pytest.mark.parametrize("name", [
    "contract-1.0.json", "panel-ven.json", "early-ven.json",
    "rule-enriched.json",
])
def test_decode_contract_shapes_without_meta_use_policy_clock(name):
    # Without arrival metadata the skew is measured from the policy's clock;
    # the shapes are accepted the same way.
    data = (CONTRACT / name).read_bytes()

    assert isinstance(decode_record(data), Reading)
