"""KPL de-aggregation: one stream record -> the user records packed inside it.

A record whose data starts with the KPL magic bytes ``F3 89 9A C2`` is an
aggregate: a protobuf ``AggregatedRecord`` followed by the MD5 of that
protobuf. Every other record is one user record on its own.

Corruption contract: anything that starts with the magic bytes but cannot be
split completely (too short, MD5 mismatch, protobuf that does not parse,
a record missing required fields, a partition-key index outside the table,
or no user record at all) raises ``AggregateError``. The caller keeps the
whole stream record as one reject (``Reason.BAD_AGGREGATE``): a partial split
would store some user records and silently drop the rest.

NOTE: the library's own ``iter_deaggregate_records`` is not used for the
split: on a bad MD5 or protobuf it hands the aggregate back as if it were a
plain record, and on a bad index it prints to stderr and stops early. Only
its protobuf schema and constants are used here.
"""

import hashlib
from typing import NamedTuple

import aws_kinesis_agg

# Importing the deaggregator first is what makes the generated protobuf
# module importable: it puts the package folder on sys.path, which the
# generated code's own ``import config_pb2`` relies on.
from aws_kinesis_agg import deaggregator as _deaggregator
from google.protobuf.message import DecodeError

from worker.errors import WorkerError

_pb = _deaggregator.messages_pb2

MAGIC = aws_kinesis_agg.MAGIC
_DIGEST_SIZE = aws_kinesis_agg.DIGEST_SIZE


class AggregateError(WorkerError):
    """The record claims to be a KPL aggregate but cannot be split. Not
    retriable: the same bytes fail the same way on every read."""


class UserRecord(NamedTuple):
    sub_sequence_number: int
    data: bytes
    # The user record's own partition key; None for a plain record (the
    # stream record's key applies).
    partition_key: str | None


def split_user_records(data: bytes) -> list[UserRecord]:
    """The user records inside ``data``, in order, numbered from 0.

    Plain data comes back as ``[UserRecord(0, data, None)]``. Raises
    ``AggregateError`` for a damaged aggregate (see the module docstring).
    """
    if not data.startswith(MAGIC):
        return [UserRecord(0, data, None)]

    body = data[len(MAGIC):]
    if len(body) <= _DIGEST_SIZE:
        raise AggregateError(
            f"KPL aggregate of {len(data)} bytes is too short to hold a "
            "message and its MD5"
        )

    message, digest = body[:-_DIGEST_SIZE], body[-_DIGEST_SIZE:]
    if hashlib.md5(message, usedforsecurity=False).digest() != digest:
        raise AggregateError("KPL aggregate MD5 does not match its message")

    aggregate = _parse(message)
    return _user_records(aggregate)


def _parse(message: bytes):
    aggregate = _pb.AggregatedRecord()
    try:
        aggregate.ParseFromString(message)
    except DecodeError as exc:
        raise AggregateError(f"KPL aggregate protobuf is corrupt: {exc}") from exc

    # The parser accepts messages that lack required fields; a user record
    # without data or partition-key index cannot be trusted.
    if not aggregate.IsInitialized():
        raise AggregateError("KPL aggregate protobuf lacks required fields")
    return aggregate


def _user_records(aggregate) -> list[UserRecord]:
    keys = list(aggregate.partition_key_table)
    # The protobuf runtime hands back bytes for a key that is not UTF-8.
    if not all(type(key) is str for key in keys):
        raise AggregateError("KPL partition key table holds non-UTF-8 keys")
    out: list[UserRecord] = []
    for index, record in enumerate(aggregate.records):
        key_index = record.partition_key_index
        if key_index >= len(keys):
            raise AggregateError(
                f"KPL user record {index} points at partition key "
                f"{key_index} of a table of {len(keys)}"
            )
        out.append(UserRecord(index, record.data, keys[key_index]))

    if not out:
        raise AggregateError("KPL aggregate holds no user records")
    return out
