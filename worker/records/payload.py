"""Record bytes -> the parsed JSON value and the text ``raw_payload`` keeps.

The fast path is one ``orjson.loads``. Only when it fails is the input
examined again, slowly, to name the kind of fault (invalid UTF-8, NaN or an
overflowing number, nesting too deep, or simply not JSON).

Text PostgreSQL cannot hold is repaired before parsing, on the JSON text
itself: the escape ``\\u0000`` (jsonb and text columns refuse NUL) and an
escaped UTF-16 surrogate without its partner (jsonb refuses those too) both
become ``\\ufffd``, U+FFFD REPLACEMENT CHARACTER. The rest of the text stays
byte for byte as sent. Identifiers are checked later and refuse U+FFFD, so a
damaged id is rejected rather than stored altered.
"""

import json
import math
import re
import zlib

import orjson

from worker.records.invalid import Invalid
from worker.records.model import Reason

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS

# orjson's own nesting limit; the slow path applies the same bound, so the
# answer does not depend on which parser looked.
MAX_DEPTH = 1024

# Cheap test first: most payloads hold no backslash at all (a one-byte scan
# is several times faster than looking for the two bytes \u), and only these
# two kinds of escape need repair.
_NEEDS_REPAIR = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")

# One escape at a time, left to right, so an escaped backslash (\\) is
# consumed whole and never mistaken for the start of another escape.
_ESCAPE = re.compile(
    rb"\\(?:"
    rb"u(?P<high>[dD][89abAB][0-9a-fA-F]{2})"
    rb"(?P<low>\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    rb"|u(?P<bad>[dD][c-fC-F][0-9a-fA-F]{2}|0000)"
    rb"|[^u])"
)
_REPLACEMENT = rb"\ufffd"


def parse_payload(data: bytes, max_inflated_bytes: int) -> tuple[object, str]:
    """(parsed value, JSON text for raw_payload); raises ``Invalid``."""
    if data[:2] == _GZIP_MAGIC:
        data = inflate(data, max_inflated_bytes)

    if b"\\" in data and _NEEDS_REPAIR.search(data):
        data = _ESCAPE.sub(_repair_escape, data)

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1].hex()
        raise Invalid(
            Reason.INVALID_UTF8,
            f"byte 0x{bad} at offset {exc.start} is not valid UTF-8",
        ) from None

    try:
        return orjson.loads(text), text
    except orjson.JSONDecodeError as exc:
        raise _diagnose(text, exc) from None


def inflate(data: bytes, limit: int) -> bytes:
    """gzip data (one or more members), refusing more than ``limit`` bytes."""
    parts = []
    total = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        try:
            part = inflater.decompress(rest, limit - total + 1)
        except zlib.error as exc:
            raise Invalid(Reason.BAD_COMPRESSION,
                          f"gzip data is corrupt: {exc}") from None

        total += len(part)
        if total > limit:
            raise Invalid(Reason.TOO_LARGE,
                          f"gzip data inflates past {limit} bytes")
        if not inflater.eof:
            raise Invalid(Reason.BAD_COMPRESSION, "gzip data is truncated")

        parts.append(part)
        rest = inflater.unused_data
    return b"".join(parts)


def _repair_escape(match: re.Match) -> bytes:
    if match["bad"] is not None:
        return _REPLACEMENT
    if match["high"] is not None and match["low"] is None:
        return _REPLACEMENT
    return match[0]


# -- the slow path: why did the fast parser refuse? --------------------------

class _Overflow:
    """Stands in for a number a double cannot hold, so the walk can say where
    it sits."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _constant(literal: str) -> _Overflow:
    return _Overflow(literal)


def _number(literal: str) -> object:
    value = float(literal)
    return value if math.isfinite(value) else _Overflow(literal)


def _diagnose(text: str, fast_error: orjson.JSONDecodeError) -> Invalid:
    try:
        value = json.loads(text, parse_constant=_constant,
                           parse_float=_number, parse_int=_number)
    except RecursionError:
        return Invalid(Reason.TOO_DEEP,
                       f"JSON nests deeper than {MAX_DEPTH} levels")
    except ValueError as exc:
        return Invalid(Reason.NOT_JSON, f"not JSON: {exc}")

    found = _find_overflow(value)
    if found is not None:
        path, literal = found
        shown = literal if len(literal) <= 40 else literal[:37] + "..."
        return Invalid(Reason.NON_FINITE_NUMBER,
                       f"{path} is {shown}, not a finite double")

    if _max_depth(text) > MAX_DEPTH:
        return Invalid(Reason.TOO_DEEP,
                       f"JSON nests deeper than {MAX_DEPTH} levels")
    return Invalid(Reason.NOT_JSON, f"not JSON: {fast_error}")


def _find_overflow(value: object) -> tuple[str, str] | None:
    # Iterative: the value may nest as deep as the recursion limit allows.
    stack = [(value, "")]
    while stack:
        item, path = stack.pop()
        kind = type(item)
        if kind is _Overflow:
            return path or "the payload", item.literal
        if kind is dict:
            prefix = path + "." if path else ""
            stack.extend((v, prefix + k) for k, v in reversed(item.items()))
        elif kind is list:
            stack.extend(
                (v, f"{path}[{i}]") for i, v in reversed(list(enumerate(item)))
            )
    return None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _max_depth(text: str) -> int:
    skeleton = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = peak = 0
    for char in skeleton:
        if char in "[{":
            depth += 1
            peak = max(peak, depth)
        else:
            depth -= 1
    return peak
