"""Malformed records of the kinds real pipelines have tripped on, each with
the reject reason the worker must store it under.

The expected reasons are written out here, not asked of the decoder: the
demo checks the worker against them, so they must not come from it.
"""

import base64
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from worker.demo.shapes import Ven, not_metering
from worker.records.model import Reason

# A venId one character longer than the tables accept.
TOO_LONG_VEN_ID = 129


@dataclass(frozen=True, slots=True)
class MalformedKind:
    name: str
    reason: Reason
    make: Callable[[Ven, int], bytes]  # (sending VEN, epoch seconds) -> data


def _reading(ven: Ven, ts: int, **changes) -> dict:
    body = {"venId": ven.ven_id, "timestamp": ts, "usedPowerKw": 2.5,
            "loads": [{"loadId": "hvac1", "currentPowerKw": 1.2}]}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def _dumps(body: dict) -> bytes:
    return orjson.dumps(body)


def _truncated(ven: Ven, ts: int) -> bytes:
    # A message cut short in transit.
    data = _dumps(_reading(ven, ts))
    return data[: len(data) // 2]


def _base64_text(ven: Ven, ts: int) -> bytes:
    # A fixture mistake: the payload base64-encoded before publishing.
    return base64.b64encode(_dumps(_reading(ven, ts)))


def _nan(ven: Ven, ts: int) -> bytes:
    # JSON has no NaN, but some encoders write it anyway.
    return _dumps(_reading(ven, ts, usedPowerKw="@NAN@")).replace(
        b'"@NAN@"', b"NaN")


def _missing_ven_id(ven: Ven, ts: int) -> bytes:
    body = _reading(ven, ts)
    del body["venId"]
    return _dumps(body)


def _long_ven_id(ven: Ven, ts: int) -> bytes:
    return _dumps(_reading(ven, ts, venId=ven.ven_id.ljust(TOO_LONG_VEN_ID,
                                                            "x")))


def _wrong_type(ven: Ven, ts: int) -> bytes:
    return _dumps(_reading(ven, ts, usedPowerKw="abc"))


def _spoofed(ven: Ven, ts: int) -> bytes:
    # The rule added the MQTT client id, and it is another VEN's.
    return _dumps(_reading(ven, ts, clientId=ven.ven_id + "-other"))


def _far_future(ven: Ven, ts: int) -> bytes:
    # A broken clock: the year 2400.
    return _dumps(_reading(ven, ts, timestamp=13_569_465_600))


def _invalid_utf8(ven: Ven, ts: int) -> bytes:
    # A raw Latin-1 byte (0xA0) where UTF-8 is required.
    marker = "@VEN@"
    data = _dumps(_reading(ven, ts, venId=marker))
    return data.replace(marker.encode(), ven.ven_id.encode() + b"\xa0")


def _event_message(ven: Ven, ts: int) -> bytes:
    return _dumps(not_metering(ts))


KINDS = (
    MalformedKind("truncated JSON", Reason.NOT_JSON, _truncated),
    MalformedKind("base64 text", Reason.NOT_JSON, _base64_text),
    MalformedKind("NaN number", Reason.NON_FINITE_NUMBER, _nan),
    MalformedKind("missing venId", Reason.MISSING_VEN_ID, _missing_ven_id),
    MalformedKind("venId too long", Reason.BAD_VEN_ID, _long_ven_id),
    MalformedKind("text in a number field", Reason.BAD_FIELD, _wrong_type),
    MalformedKind("spoofed clientId", Reason.SPOOFED_VEN_ID, _spoofed),
    MalformedKind("year 2400", Reason.TIMESTAMP_OUT_OF_RANGE, _far_future),
    MalformedKind("invalid UTF-8", Reason.INVALID_UTF8, _invalid_utf8),
    MalformedKind("event message", Reason.NOT_METERING, _event_message),
)
