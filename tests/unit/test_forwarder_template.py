"""Partition-key templates of the IoT-rule forwarder (localstack/forwarder.py),
rendered without a broker or a stream."""

import json
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from localstack_scripts import load_script

fw = load_script("forwarder")


TOPIC = "volttron/metering"
READING = b'{"venId": "ven-0042", "usedPowerKw": 3.18, "meta": {"site": 7}}'


def render(template: str, payload: bytes = READING, topic: str = TOPIC,
           fallback: str = "iot") -> str:
    return fw.parse_template(template, fallback).render(topic, payload)


def test_render_constant_ignores_payload():
    assert render("iot") == "iot"
    assert render("iot", payload=b"\xff not json") == "iot"


def test_render_ven_id_from_payload():
    assert render("${venId}") == "ven-0042"


def test_render_ven_id_beside_literal_text():
    assert render("ven/${venId}/x") == "ven/ven-0042/x"


def test_render_nested_field():
    assert render("${meta.site}") == "7"


@pytest.mark.parametrize("payload", [
    b'{"usedPowerKw": 3.18}',        # field absent
    b'{"venId": null}',              # present but null
    b'{"venId": ""}',                # renders an empty key
    b'{"venId": {"id": 1}}',         # not a scalar
    b'["venId", "ven-1"]',           # JSON, but not an object
    b"venId=ven-1",                  # not JSON
    b"\xf3\x89\x9a\xc2\x00\xff",     # not even text (a KPL header)
    b"",
])
def test_render_ven_id_falls_back_when_no_value(payload):
    assert render("${venId}", payload, fallback="no-ven") == "no-ven"


def test_render_fallback_replaces_whole_key_not_just_the_field():
    assert render("ven-${venId}", b"{}", fallback="iot") == "iot"


def test_render_lone_surrogate_falls_back():
    # Valid JSON, but the key could not be sent to Kinesis as UTF-8.
    assert render("${venId}", b'{"venId": "ven-\\ud800"}') == "iot"


def test_render_numbers_and_booleans_as_json_spells_them():
    assert render("${venId}", b'{"venId": 42}') == "42"
    assert render("${venId}", b'{"venId": true}') == "true"


def test_render_key_over_256_characters_falls_back():
    long_id = "v" * 257
    payload = ('{"venId": "%s"}' % long_id).encode()
    assert render("${venId}", payload) == "iot"
    assert render("${venId}", payload[:-3] + b'"}') == "v" * 256


def test_render_newuuid_is_a_fresh_uuid4_each_time():
    keys = {render("${newuuid()}") for _ in range(50)}
    assert len(keys) == 50
    assert all(uuid.UUID(key).version == 4 for key in keys)


def test_render_topic_whole_and_by_level():
    assert render("${topic()}") == "volttron/metering"
    assert render("${topic(1)}") == "volttron"
    assert render("${topic(2)}") == "metering"
    assert render("${topic(3)}", fallback="deep") == "deep"


def test_parse_reads_payload_only_when_a_field_is_used():
    assert fw.parse_template("${venId}").reads_payload
    assert not fw.parse_template("${topic()}-${newuuid()}").reads_payload


@pytest.mark.parametrize("template, complaint", [
    ("", "empty"),
    ("${clientid()}", "unsupported ${clientid()}"),
    ("${venId + 1}", "unsupported"),
    ("${}", "unsupported"),
    ("ven-${venId", "unclosed"),
])
def test_parse_rejects_bad_template_with_reason(template, complaint):
    with pytest.raises(ValueError, match=re.escape(complaint)):
        fw.parse_template(template)


@pytest.mark.parametrize("fallback", ["", "k" * 257])
def test_parse_rejects_invalid_fallback(fallback):
    with pytest.raises(ValueError, match="fallback key"):
        fw.parse_template("${venId}", fallback)


@given(payload=st.binary(max_size=300))
def test_render_any_bytes_gives_a_valid_key(payload):
    key = render("${venId}", payload)
    assert 1 <= len(key) <= fw.MAX_KEY_CHARS


@given(ven_id=st.text(min_size=1, max_size=256))
def test_render_any_ven_id_string_round_trips(ven_id):
    payload = json.dumps({"venId": ven_id}).encode()
    assert render("${venId}", payload) == ven_id
