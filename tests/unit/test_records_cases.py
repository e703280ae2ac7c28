"""One test per line of the cases file (tests/fixtures/cases), read at test time.

Each case asserts the decoder's part of the expected outcome. The parts that
happen in PostgreSQL (duplicates counted, a value the database refuses) are
the sink's tests; here those records must simply decode to a Reading.
"""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.records import Reading, Reason, RecordMeta, Reject, decode_record

CASES_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "cases" / "cases.jsonl"

ARRIVED = datetime(2025, 12, 1, 0, 0, 30, tzinfo=UTC)

# The cases name reasons in words; these are the project's stable codes.
REASONS = {
    "bad venId": Reason.BAD_VEN_ID,
    "invalid UTF-8": Reason.INVALID_UTF8,
    "non-finite number": Reason.NON_FINITE_NUMBER,
    "timestamp out of range": Reason.TIMESTAMP_OUT_OF_RANGE,
    "not JSON": Reason.NOT_JSON,
    "bad field": Reason.BAD_FIELD,
    "missing venId": Reason.MISSING_VEN_ID,
    "venId does not match the MQTT client id": Reason.SPOOFED_VEN_ID,
}

# Cases whose outcome is "by a documented rule": the rule in
# docs/payloads.md, asserted here.
DOCUMENTED_RULES = {
    # NUL in free text: stored, the NUL replaced by U+FFFD.
    "nul-in-other-text": ("stored", ("fw", "1.2\ufffd")),
    # A lone surrogate: stored, replaced by U+FFFD.
    "lone-surrogate": ("stored", ("label", "\ufffd")),
    # Deeper than 1024 levels: rejected.
    "deep-nesting": ("rejected", Reason.TOO_DEEP),
}


def load_cases() -> list:
    cases = []
    for line in CASES_FILE.read_text().splitlines():
        if line.strip():
            case = json.loads(line)
            cases.append(pytest.param(case, id=case["id"]))
    return cases


def case_bytes(case: dict) -> bytes:
    if "text" in case:
        return case["text"].encode("utf-8")
    return base64.b64decode(case["base64"])


def zulu(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("case", load_cases())
def test_decode_case(case):
    data = case_bytes(case)
    meta = RecordMeta("shardId-000000000001", "4960", 0, ARRIVED)

    result = decode_record(data, meta)

    if case["id"] in DOCUMENTED_RULES:
        check_documented_rule(case["id"], data, result)
        return
    expect = case["expect"]
    if expect["outcome"] == "rejected":
        check_rejected(expect, data, result)
    else:
        check_stored(expect, result)


def check_rejected(expect: dict, data: bytes, result) -> None:
    assert isinstance(result, Reject), result
    assert result.reason is REASONS[expect["reason"]], result.detail
    assert result.raw == data  # kept byte for byte
    if "names the field" in expect.get("detail", ""):
        assert "usedPowerKw" in result.detail


def check_stored(expect: dict, result) -> None:
    # "stored", or the duplicate case, whose counting is the sink's part.
    assert isinstance(result, Reading), getattr(result, "detail", result)
    if "timestamp" in expect:
        assert zulu(result.timestamp) == expect["timestamp"]
    if "used_power_kw" in expect:
        assert result.used_power_kw == expect["used_power_kw"]
        assert type(result.used_power_kw) is float
    if "load_samples" in expect:
        assert len(result.samples) == expect["load_samples"]
    assert json.loads(result.raw_payload) is not None


def check_documented_rule(case_id: str, data: bytes, result) -> None:
    outcome, detail = DOCUMENTED_RULES[case_id]
    if outcome == "rejected":
        assert isinstance(result, Reject)
        assert result.reason is detail
        assert result.raw == data
        return

    assert isinstance(result, Reading)
    key, stored_text = detail
    assert json.loads(result.raw_payload)[key] == stored_text
    assert "\\u0000" not in result.raw_payload
    assert "\\ud800" not in result.raw_payload.lower()


def test_cases_file_has_a_case_per_kind():
    # Guards against reading an empty or truncated file and passing vacuously.
    ids = {param.id for param in load_cases()}

    assert {"nul-in-ven-id", "deep-nesting", "many-circuits"} <= ids
    assert len(ids) >= 20
