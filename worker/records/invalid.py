"""The one exception the decoder's steps raise to turn a record into a reject.

It never leaves ``worker.records``: ``decode_record`` catches it and returns a
``Reject`` with the same reason and detail.
"""

from worker.records.model import Reason


class Invalid(Exception):
    __slots__ = ("reason", "detail")

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def type_name(value: object) -> str:
    """The JSON name of a parsed value's type, for details."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


_JSON_TYPES = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
    list: "array",
    dict: "object",
}
