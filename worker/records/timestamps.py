"""Reading times -> aware UTC datetimes, or a reject; never a guess.

Accepted forms: epoch seconds (JSON integer, fraction or numeric string),
epoch milliseconds (the same, with a magnitude above 1e11), and ISO-8601 text
with ``Z`` or an offset (text without one is UTC). Fractions are read from the
number's shortest decimal form (``repr`` for a double), never through binary
float arithmetic, so ``1764547200.001`` keeps exactly .001 s. Resolution is
the microsecond, rounded half to even.
"""

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal

from worker.records.invalid import Invalid, type_name
from worker.records.model import Reason

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Magnitudes above this are milliseconds. 1e11 s is the year 5138 and 1e11 ms
# is 1973: both are outside any accepted range, so no value reads both ways.
_MILLIS_ABOVE = 10**11

# A private context: the thread's default one can be changed by any library.
# 40 digits hold any epoch value to well below a microsecond.
_DECIMAL = Context(prec=40, rounding=ROUND_HALF_EVEN)

# More than 10**18 s or ms is far outside every bound; checking the exponent
# first keeps a value like 1e999999 from costing a huge multiplication.
_MAX_EXPONENT = 18

# ASCII digits only: Decimal would also read other scripts' digits.
_NUMERIC = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware (or UTC naive) datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _MICROSECOND


def parse_timestamp(value: object, field: str, low_us: int,
                    high_us: int) -> datetime:
    """The UTC datetime of ``value``; raises ``Invalid``.

    ``low_us`` and ``high_us`` bound the result, inclusive, in microseconds
    since the epoch.
    """
    kind = type(value)
    if kind is int:
        micros = value * (1_000 if abs(value) > _MILLIS_ABOVE else 1_000_000)
    elif kind is float:
        micros = _decimal_micros(Decimal(repr(value)), value, field)
    elif kind is str and _NUMERIC.fullmatch(value):
        micros = _decimal_micros(Decimal(value), value, field)
    elif kind is str:
        micros = to_micros(_parse_iso(value, field))
    else:
        raise Invalid(
            Reason.BAD_TIMESTAMP,
            f"{field} must be epoch seconds, epoch milliseconds or ISO-8601 "
            f"text, got {type_name(value)}",
        )

    if not low_us <= micros <= high_us:
        raise Invalid(Reason.TIMESTAMP_OUT_OF_RANGE,
                      _out_of_range(value, field, micros, low_us))
    if kind is int and micros % 1_000_000 == 0:
        # Whole seconds, the common case: exact, and twice as fast.
        return datetime.fromtimestamp(micros // 1_000_000, UTC)
    return EPOCH + timedelta(microseconds=micros)


def _decimal_micros(number: Decimal, value: object, field: str) -> int:
    if number.adjusted() > _MAX_EXPONENT:
        raise Invalid(Reason.TIMESTAMP_OUT_OF_RANGE,
                      f"{field} {_shown(value)} is far outside any valid time")

    scale = 1_000 if abs(number) > _MILLIS_ABOVE else 1_000_000
    scaled = _DECIMAL.multiply(number, scale)
    return int(scaled.to_integral_value(context=_DECIMAL))


def _parse_iso(text: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(
            Reason.BAD_TIMESTAMP,
            f"{field} {_shown(text)} is neither an epoch number nor ISO-8601",
        ) from None

    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # An offset that pushes year 1 or 9999 off the calendar.
        pass
    raise Invalid(Reason.TIMESTAMP_OUT_OF_RANGE,
                  f"{field} {_shown(text)} is outside any valid time")


def _out_of_range(value: object, field: str, micros: int, low_us: int) -> str:
    if micros < low_us:
        bound = EPOCH + timedelta(microseconds=low_us)
        return f"{field} {_shown(value)} is before {bound.isoformat()}"
    return (f"{field} {_shown(value)} is further ahead than the allowed skew "
            "from the record's arrival")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
