"""Typed reads of single JSON values. Each raises ``Invalid`` whose detail
starts with the field's name; callers add the path in front (``loads[2].``).

Callers test the common type inline (``type(v) is float``) and call these
only otherwise: on a busy shard they run for every load of every reading.
"""

from worker.records.invalid import Invalid, type_name
from worker.records.model import Reason

# PostgreSQL ``integer`` bounds: a bigger priority would fail the COPY.
_INT4_MIN = -(2**31)
_INT4_MAX = 2**31 - 1


def number(value: object, field: str) -> float | None:
    """A JSON number as a double; integers (rule SQL 2016 writes whole
    numbers that way) are converted. Strings are refused: no guessing."""
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if value is None:
        return None
    raise Invalid(Reason.BAD_FIELD,
                  f"{field} must be a number, got {type_name(value)}")


def text(value: object, field: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise Invalid(Reason.BAD_FIELD,
                  f"{field} must be a string, got {type_name(value)}")


def flag(value: object, field: str) -> bool | None:
    if value is None or type(value) is bool:
        return value
    raise Invalid(Reason.BAD_FIELD,
                  f"{field} must be true or false, got {type_name(value)}")


def small_int(value: object, field: str) -> int | None:
    """A whole number that fits PostgreSQL ``integer``; 3.0 counts as 3."""
    if value is None:
        return None
    kind = type(value)
    if kind is float and value.is_integer():
        value = int(value)
    elif kind is not int:
        raise Invalid(Reason.BAD_FIELD,
                      f"{field} must be a whole number, got {type_name(value)}")

    if not _INT4_MIN <= value <= _INT4_MAX:
        raise Invalid(Reason.BAD_FIELD,
                      f"{field} {value} is outside the integer range")
    return value


def is_clean_id(value: str) -> bool:
    """No control, format, separator (other than space) or surrogate
    character, and no U+FFFD: the mark the decoder leaves where it replaced
    a NUL or a lone surrogate, so a damaged id is refused, never stored."""
    return value.isprintable() and "\ufffd" not in value


def identifier(value: object, field: str) -> str | None:
    """An id: a clean string, or a JSON integer stored as its digits."""
    kind = type(value)
    if kind is int:
        return str(value)
    if value is None:
        return None
    if kind is not str:
        raise Invalid(Reason.BAD_FIELD,
                      f"{field} must be a string, got {type_name(value)}")
    if not is_clean_id(value):
        raise Invalid(Reason.BAD_FIELD,
                      f"{field} contains a control or replacement character")
    return value
