"""Fields: venId and spoofing, types, precedence, samples, and the rule for
text PostgreSQL cannot hold."""

import json
from datetime import UTC, datetime

import orjson
import pytest

from worker.records import (
    SAMPLE_COLUMNS,
    DecodePolicy,
    Reading,
    Reason,
    RecordMeta,
    Reject,
    decode_record,
)

META = RecordMeta("shardId-0", "1", 0, datetime(2025, 12, 1, 0, 1, tzinfo=UTC))
BASE = {"venId": "ven-001", "timestamp": 1764547200}


def decode(body, policy: DecodePolicy | None = None):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return decode_record(data, META, policy or DecodePolicy())


def stored(body, policy: DecodePolicy | None = None) -> Reading:
    result = decode(body, policy)
    assert isinstance(result, Reading), result
    return result


def rejected(body, reason: Reason, policy: DecodePolicy | None = None):
    result = decode(body, policy)
    assert isinstance(result, Reject), result
    assert result.reason is reason, result.detail
    return result


def sample(reading: Reading, index: int = 0) -> dict:
    return dict(zip(SAMPLE_COLUMNS, reading.samples[index]))


# -- what is a metering message ----------------------------------------------

@pytest.mark.parametrize("body", [
    {**BASE, "topic": "openadr/event", "usedPowerKw": 1.0},
    {"op": "event", "event_id": "evt-1", "requestedReductionKw": 1.0},
    [BASE], "ven-001", 17, None,
])
def test_decode_other_messages_are_not_metering(body):
    rejected(body, Reason.NOT_METERING)


def test_decode_metering_topic_is_accepted():
    assert stored({**BASE, "topic": "volttron/metering"}).ven_id == "ven-001"


# -- venId and the MQTT client id --------------------------------------------

@pytest.mark.parametrize("ven_id", [
    17, True, ["ven-001"], "", "   ", "ven\t001", "ven\n001", "ven\u200b001",
    "ven\x7f001", "ven\ufffd001", "v" * 129,
])
def test_decode_unusable_ven_id_is_bad(ven_id):
    reject = rejected({**BASE, "venId": ven_id}, Reason.BAD_VEN_ID)

    assert "venId" in reject.detail


@pytest.mark.parametrize("escaped", [r"\u0000", r"\ud800", r"\udc00"])
def test_decode_ven_id_with_escaped_nul_or_surrogate_is_bad(escaped):
    data = ('{"venId":"ven-' + escaped + '1","timestamp":1764547200}').encode()

    rejected(data, Reason.BAD_VEN_ID)


def test_decode_ven_id_of_128_characters_is_kept():
    assert stored({**BASE, "venId": "v" * 128}).ven_id == "v" * 128


def test_decode_ven_id_null_is_missing():
    rejected({**BASE, "venId": None}, Reason.MISSING_VEN_ID)


@pytest.mark.parametrize("key", ["clientId", "clientid"])
@pytest.mark.parametrize("client", ["ven-999", "VEN-001", 1, ""])
def test_decode_client_id_other_than_ven_id_is_spoofed(key, client):
    reject = rejected({**BASE, key: client}, Reason.SPOOFED_VEN_ID)

    assert key in reject.detail


def test_decode_both_client_keys_must_match():
    body = {**BASE, "clientId": "ven-001", "clientid": "ven-002"}

    rejected(body, Reason.SPOOFED_VEN_ID)
    assert stored({**BASE, "clientId": "ven-001", "clientid": "ven-001"})


# -- types ---------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("usedPowerKw", "abc"), ("usedPowerKw", "3.2"), ("usedPowerKw", True),
    ("shedPowerKw", [1]), ("batterySoc", {}),
    ("eventId", 1.5), ("eventId", "evt\x00"), ("eventId", "evt\n1"),
])
def test_decode_wrong_type_names_the_field(field, value):
    reject = rejected({**BASE, field: value}, Reason.BAD_FIELD)

    assert reject.detail.startswith(field)


@pytest.mark.parametrize(("load", "field"), [
    ({"loadId": "a", "currentPowerKw": "1.2"}, "loads[1].currentPowerKw"),
    ({"loadId": "a", "capacityKw": False}, "loads[1].capacityKw"),
    ({"loadId": "a", "enabled": 1}, "loads[1].enabled"),
    ({"loadId": "a", "priority": 2**31}, "loads[1].priority"),
    ({"loadId": "a", "priority": 1.5}, "loads[1].priority"),
    ({"loadId": "a", "name": 5}, "loads[1].name"),
    ({"loadId": "a\u0000b"}, "loads[1].loadId"),
    ({"loadId": ["a"]}, "loads[1].loadId"),
    ({"id": 2.5}, "loads[1].id"),
    ("hvac", "loads[1]"),
])
def test_decode_bad_load_names_the_entry_and_field(load, field):
    body = {**BASE, "loads": [{"loadId": "ok"}, load]}

    reject = rejected(body, Reason.BAD_FIELD)

    assert reject.detail.startswith(field)


def test_decode_panel_voltage_of_wrong_type_is_bad_when_circuits_need_it():
    body = {**BASE, "panelVoltage": "240V", "circuits": [{"id": "c1"}]}

    reject = rejected(body, Reason.BAD_FIELD)

    assert reject.detail.startswith("panelVoltage")


def test_decode_breaker_amps_of_wrong_type_names_the_circuit():
    body = {**BASE, "panelVoltage": 240,
            "circuits": [{"id": "c1", "breakerAmps": "30A"}]}

    reject = rejected(body, Reason.BAD_FIELD)

    assert reject.detail.startswith("circuits[0].breakerAmps")


def test_decode_whole_numbers_become_doubles_and_ids_text():
    body = {**BASE, "usedPowerKw": 3, "loads": [
        {"id": 7, "capacityKw": 4, "currentPowerKw": -2, "priority": 3.0},
    ]}

    reading = stored(body)

    assert reading.used_power_kw == 3.0 and type(reading.used_power_kw) is float
    assert sample(reading) == {
        "load_id": "7", "name": None, "type": None, "capacity_kw": 4.0,
        "current_power_kw": -2.0, "shed_capability_kw": None,
        "enabled": None, "priority": 3,
        "raw_payload": '{"id":7,"capacityKw":4,"currentPowerKw":-2,'
                       '"priority":3.0}',
    }
    assert type(sample(reading)["capacity_kw"]) is float


def test_decode_too_many_loads():
    policy = DecodePolicy(max_loads_per_reading=3)
    loads = [{"loadId": str(i)} for i in range(4)]

    assert stored({**BASE, "loads": loads[:3]}, policy)
    reject = rejected({**BASE, "loads": loads}, Reason.TOO_MANY_LOADS, policy)
    assert "loads" in reject.detail


# -- precedence ----------------------------------------------------------------

@pytest.mark.parametrize(("body", "used"), [
    ({"usedPowerKw": 1.0, "power_kw": 2.0, "totalPower": 3.0}, 1.0),
    ({"power_kw": 2.0, "totalPower": 3.0}, 2.0),
    ({"totalPower": 3.0}, 3.0),
    ({"usedPowerKw": None, "power_kw": 2.0}, 2.0),  # null counts as absent
    ({}, None),
])
def test_decode_used_power_precedence(body, used):
    assert stored({**BASE, **body}).used_power_kw == used


def test_decode_winner_of_wrong_type_is_refused_not_skipped():
    body = {**BASE, "usedPowerKw": "3.2", "power_kw": 3.2}

    assert rejected(body, Reason.BAD_FIELD).detail.startswith("usedPowerKw")


def test_decode_legacy_names_fill_every_column():
    body = {**BASE, "shed_kw": 0.5, "base_power_kw": 9.0,
            "active_event": "evt-7", "requestedReductionKw": 1}

    reading = stored(body)

    assert (reading.shed_power_kw, reading.baseline_power_kw,
            reading.event_id, reading.requested_reduction_kw) == (
        0.5, 9.0, "evt-7", 1.0)


def test_decode_loads_win_over_circuits():
    body = {**BASE, "loads": [{"loadId": "l1"}], "circuits": [{"id": "c1"}]}

    assert [s[0] for s in stored(body).samples] == ["l1"]


def test_decode_empty_loads_still_win_over_circuits():
    body = {**BASE, "loads": [], "circuits": [{"id": "c1"}]}

    assert stored(body).samples == []


def test_decode_sample_precedence_inside_an_entry():
    body = {**BASE, "panelVoltage": 240, "loads": [
        {"loadId": "l1", "id": "x", "capacityKw": 5.0, "breakerAmps": 30,
         "currentPowerKw": 1.0, "currentKw": 2.0, "power": 3.0},
        {"id": "c2", "breakerAmps": 20, "currentKw": 2.0, "power": 3.0},
        {"id": "c3", "power": 3.0},
    ]}

    reading = stored(body)

    assert [sample(reading, i)["load_id"] for i in range(3)] == [
        "l1", "c2", "c3"]
    assert [sample(reading, i)["capacity_kw"] for i in range(3)] == [
        5.0, 4.8, None]
    assert [sample(reading, i)["current_power_kw"] for i in range(3)] == [
        1.0, 2.0, 3.0]


def test_decode_circuits_without_panel_voltage_have_no_capacity():
    body = {**BASE, "circuits": [{"id": "c1", "breakerAmps": 30}]}

    assert sample(stored(body))["capacity_kw"] is None


# -- text PostgreSQL cannot hold ---------------------------------------------

def test_decode_nul_in_free_text_is_replaced_everywhere():
    data = (b'{"venId":"ven-001","timestamp":1764547200,"fw":"1.2\\u0000",'
            b'"loads":[{"loadId":"a","name":"Pump\\u0000","type":"\\u0000"}],'
            b'"k\\u0000":1}')

    reading = stored(data)

    stored_payload = json.loads(reading.raw_payload)
    assert stored_payload["fw"] == "1.2\ufffd"
    assert stored_payload["k\ufffd"] == 1
    assert sample(reading)["name"] == "Pump\ufffd"
    assert sample(reading)["type"] == "\ufffd"
    assert "\\u0000" not in sample(reading)["raw_payload"]
    assert "\x00" not in sample(reading)["raw_payload"]


@pytest.mark.parametrize(("escaped", "kept"), [
    (r"\ud83d\ude00", "\U0001f600"),         # a proper pair is one character
    (r"\ud800", "\ufffd"),
    (r"\udc00\ud800", "\ufffd\ufffd"),       # wrong order: two lone halves
    (r"\ud800\u0041", "\ufffdA"),
    (r"\\u0000", "\\u0000"),                 # an escaped backslash, not NUL
    (r"\\\u0000", "\\\ufffd"),
    (r"\u00e9", "\u00e9"),
])
def test_decode_escape_repair_is_exact(escaped, kept):
    data = ('{"venId":"ven-001","timestamp":1764547200,"label":"' + escaped +
            '"}').encode()

    reading = stored(data)

    assert json.loads(reading.raw_payload)["label"] == kept


def test_decode_untouched_payload_is_kept_byte_for_byte():
    data = ('{"venId":"ven-001", "timestamp": 1764547200,\n'
            ' "label": "caf\u00e9 \\u00e9 \\"q\\""}').encode()

    assert stored(data).raw_payload == data.decode()
