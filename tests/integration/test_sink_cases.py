"""Every input in the shared cases file, decoded and stored in a batch
between two good records: the good ones are stored, the case is stored or
rejected (raw bytes kept), the checkpoint moves past all three, and nothing
raises. The decoder's own tests check reasons in detail; these check that no
case can fail or stall the load."""

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from sink_support import (  # noqa: F401  (sink is a fixture)
    SHARD,
    add_lease,
    batch,
    count,
    lease_row,
    sink,
)
from worker.records import RecordMeta, Reject, decode_record

CASES_FILE = Path("/work/shared/cases/cases.jsonl")
ARRIVED = datetime(2025, 12, 1, 0, 1, tzinfo=timezone.utc)


def _cases() -> list[dict]:
    if not CASES_FILE.exists():
        return []
    return [json.loads(line) for line in CASES_FILE.read_text().splitlines()
            if line.strip()]


def _data(case: dict) -> bytes:
    if "base64" in case:
        return base64.b64decode(case["base64"])
    return case["text"].encode("utf-8", "surrogatepass")


def _good(ven_id: str, seq: str):
    data = orjson.dumps({"venId": ven_id, "timestamp": 1764547300,
                         "usedPowerKw": 1.0,
                         "loads": [{"loadId": "hvac1",
                                    "currentPowerKw": 0.5}]})
    return decode_record(data, RecordMeta(SHARD, seq, 0, ARRIVED))


CASES = [c for c in _cases() if c["id"] != "duplicate"]


@pytest.mark.skipif(not CASES, reason=f"{CASES_FILE} is not present")
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_between_good_records_never_blocks_the_batch(db, sink, case):
    lease = add_lease(db)
    data = _data(case)
    item = decode_record(data, RecordMeta(SHARD, "2", 0, ARRIVED))
    items = [_good("ven-before", "1"), item, _good("ven-after", "3")]

    result = sink.write(batch(lease, items, seq="3"))

    assert db.execute(
        "SELECT ven_id FROM ven_telemetry "
        "WHERE ven_id IN ('ven-before', 'ven-after') ORDER BY ven_id"
    ).fetchall() == [("ven-after",), ("ven-before",)]
    assert lease_row(db)["checkpoint_sequence"] == "3"
    assert result.stored + sum(result.rejected.values()) == 3
    rejected = db.execute(
        "SELECT raw_data, reason_code FROM ingest_rejects"
    ).fetchall()
    expected = case["expect"]["outcome"]
    if isinstance(item, Reject):
        assert rejected == [(data, item.reason.value)]
        assert expected != "stored"
    elif rejected:
        # Decoded, then refused by PostgreSQL: kept as the payload text.
        assert rejected == [(item.raw_payload.encode("utf-8",
                                                     "surrogatepass"),
                             "database_refused")]
        assert expected != "stored"
    else:
        assert count(db, "ven_telemetry") == 3
        assert expected != "rejected"


DUPLICATE = next((c for c in _cases() if c["id"] == "duplicate"), None)


@pytest.mark.skipif(DUPLICATE is None, reason="no duplicate case")
def test_duplicate_case_stores_one_and_counts_two(db, sink):
    lease = add_lease(db)
    data = _data(DUPLICATE)

    def decoded(seq):
        return decode_record(data, RecordMeta(SHARD, seq, 0, ARRIVED))

    first = sink.write(batch(lease, [decoded("1"), decoded("2")], seq="2"))
    later = sink.write(batch(lease, [decoded("3")], seq="3"))

    assert first.stored + later.stored == 1
    assert first.duplicates + later.duplicates == 2
    assert count(db, "ven_telemetry") == 1
    assert lease_row(db)["duplicates_dropped"] == 2
