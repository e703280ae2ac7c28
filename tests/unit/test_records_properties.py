"""Properties over generated input: the decoder never raises, a Reading
always holds text PostgreSQL accepts, and the quick sample path agrees with
the careful one."""

import json
from datetime import UTC, datetime

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.records import Reading, RecordMeta, Reject, decode_record
from worker.records.fast_samples import quick_samples
from worker.records.invalid import Invalid
from worker.records.payload import parse_payload
from worker.records.samples import careful_samples

META = RecordMeta("shardId-0", "1", 0, datetime(2025, 12, 1, 0, 1, tzinfo=UTC))

# Modest counts: the whole suite must stay fast.
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Text that includes NUL, controls and lone surrogates on purpose.
any_text = st.text(st.characters(codec=None, categories=None), max_size=12)
tricky_text = st.text(
    st.sampled_from(["\x00", "\ud800", "\udfff", "\ufffd", "a", "\\", '"',
                     "\n", "\U0001f600", "é"]),
    max_size=8,
)
texts = st.one_of(any_text, tricky_text)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(texts, inner, max_size=4),
    ),
    max_leaves=20,
)

numbers = st.one_of(st.none(), st.integers(-(10**6), 10**6),
                    st.floats(-1e6, 1e6))
ids = st.one_of(texts, st.text("abc-_0", min_size=1, max_size=6),
                st.integers(0, 10**6))


def mostly(good: st.SearchStrategy) -> st.SearchStrategy:
    """Usually a value of the right type, sometimes anything at all."""
    return st.one_of(good, good, good, scalars)


# Load entries near the real shapes, so both sample paths get exercised.
load_entry = st.fixed_dictionaries({}, optional={
    "loadId": mostly(ids), "id": mostly(ids),
    "name": mostly(st.one_of(st.none(), texts)),
    "type": mostly(st.one_of(st.none(), texts)),
    "capacityKw": mostly(numbers), "breakerAmps": mostly(numbers),
    "currentPowerKw": mostly(numbers), "currentKw": mostly(numbers),
    "power": mostly(numbers), "shedCapabilityKw": mostly(numbers),
    "enabled": mostly(st.one_of(st.none(), st.booleans())),
    "priority": mostly(st.one_of(st.none(), st.integers(-(2**32), 2**32))),
    "critical": json_values,
})
# Entries of the right types throughout: the quick path's own ground.
clean_entry = st.fixed_dictionaries(
    {"loadId": st.text("abc-_0\u00e9", min_size=1, max_size=6)},
    optional={
        "id": ids, "name": st.one_of(st.none(), texts),
        "type": st.one_of(st.none(), texts), "capacityKw": numbers,
        "breakerAmps": numbers, "currentKw": numbers, "power": numbers,
        "shedCapabilityKw": numbers, "enabled": st.booleans(),
        "priority": st.integers(-(2**31), 2**31 - 1),
    },
)
# The full contract 1.0 load: all eight fields, nearly always of their
# usual types (the quick path's shape test), sometimes one off by a little.
contract_entry = st.fixed_dictionaries({
    "loadId": st.one_of(st.text("abc-_0\u00e9", min_size=1, max_size=6),
                        tricky_text),
    "name": st.one_of(st.text("Lo d1", max_size=6), st.none()),
    "type": st.one_of(st.just("hvac"), tricky_text),
    "capacityKw": st.one_of(st.floats(-1e6, 1e6), st.integers(0, 9)),
    "currentPowerKw": st.one_of(st.floats(-1e6, 1e6), st.none()),
    "shedCapabilityKw": st.floats(-1e6, 1e6),
    "enabled": st.one_of(st.booleans(), st.just(1)),
    "priority": st.one_of(st.integers(-(2**31), 2**31 - 1),
                          st.integers(2**31, 2**40), st.just(True)),
}, optional={"id": ids, "breakerAmps": numbers, "critical": json_values})
loads = st.one_of(
    st.lists(clean_entry, max_size=5),
    st.lists(contract_entry, max_size=5),
    st.lists(st.one_of(clean_entry, contract_entry, load_entry), max_size=5),
)

readings = st.fixed_dictionaries(
    {
        "venId": st.one_of(texts, st.just("ven-001")),
        "timestamp": st.one_of(
            st.integers(1_700_000_000, 1_764_550_000),
            st.floats(1.7e9, 1.76455e9), st.just("2025-12-01T00:00:00Z"),
            scalars,
        ),
    },
    optional={
        "usedPowerKw": scalars, "power_kw": scalars, "eventId": scalars,
        "batterySoc": scalars, "panelVoltage": st.one_of(scalars, st.just(240)),
        "loads": st.one_of(loads, json_values), "circuits": loads,
        "clientId": st.one_of(texts, st.just("ven-001")),
        "extra": json_values,
    },
)


def encode(value, ascii_only: bool) -> bytes:
    """JSON bytes the way a VEN might send them; lone surrogates become
    \\u escapes (ASCII) or invalid UTF-8 (surrogatepass)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def strings_in(value):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def is_storable_text(text: str) -> bool:
    return "\x00" not in text and not any(
        0xD800 <= ord(char) <= 0xDFFF for char in text)


def check_outcome(data: bytes, result) -> None:
    assert isinstance(result, Reading | Reject)
    if isinstance(result, Reject):
        assert result.raw == data
        assert result.detail
        return

    # jsonb refuses \u0000 and lone surrogates; orjson refuses the latter,
    # so a clean parse plus a NUL check covers both.
    parsed = orjson.loads(result.raw_payload)
    assert all(is_storable_text(s) for s in strings_in(parsed))
    assert "\\u0000" not in result.raw_payload

    columns = [result.ven_id, result.event_id]
    for sample in result.samples:
        columns += [sample[0], sample[1], sample[2], sample[8]]
        assert all(is_storable_text(s) for s in strings_in(
            orjson.loads(sample[8])))
    assert all(is_storable_text(c) for c in columns if c is not None)


@SETTINGS
@given(st.binary(max_size=400))
def test_decode_arbitrary_bytes_never_raises(data):
    check_outcome(data, decode_record(data, META))


@SETTINGS
@given(json_values, st.booleans())
def test_decode_arbitrary_json_never_raises(value, ascii_only):
    data = encode(value, ascii_only)

    check_outcome(data, decode_record(data, META))


@SETTINGS
@given(readings, st.booleans())
def test_decode_reading_shaped_json_never_raises(value, ascii_only):
    data = encode(value, ascii_only)

    check_outcome(data, decode_record(data, META))


@SETTINGS
@given(readings.map(lambda r: {**r, "venId": "ven-001",
                               "timestamp": 1764547200}))
def test_decode_reading_shaped_json_with_valid_keys_keeps_the_ven_id(value):
    # The ASCII form: every lone surrogate or NUL arrives as an escape.
    data = encode(value, ascii_only=True)

    result = decode_record(data, META)

    check_outcome(data, result)
    if isinstance(result, Reading):
        assert result.ven_id == "ven-001"


@SETTINGS
@given(loads, st.one_of(st.none(), st.floats(100, 480)))
def test_quick_samples_agree_with_careful_samples(entries, voltage):
    # Parsed the way the decoder parses, so types and text match real input.
    parsed, _ = parse_payload(encode(entries, ascii_only=True), 10**6)
    quick = quick_samples(parsed, voltage)
    if quick is None:
        return
    try:
        careful = careful_samples(parsed, "loads", voltage)
    except Invalid as exc:
        raise AssertionError(f"quick path accepted what careful refused: "
                             f"{exc.detail}") from None
    assert quick == careful

