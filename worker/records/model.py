"""What the decoder hands to the sink: readings with their load samples, or
rejects with a reason. Plain data, no I/O.

Load samples are plain tuples in ``SAMPLE_COLUMNS`` order rather than objects:
a busy batch holds tens of thousands of them, and the sink streams them into
COPY as they are.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

# Column order of one load-sample tuple (the sink adds telemetry_id and
# reading_timestamp from the reading it belongs to).
SAMPLE_COLUMNS = (
    "load_id",
    "name",
    "type",
    "capacity_kw",
    "current_power_kw",
    "shed_capability_kw",
    "enabled",
    "priority",
    "raw_payload",
)

LoadSample = tuple  # (load_id, name, type, capacity_kw, ..., raw_payload)


@dataclass(slots=True, frozen=True)
class RecordMeta:
    """Where one user record came from in the stream."""

    shard_id: str
    sequence_number: str
    # 0 for a plain record; the index inside a KPL-aggregated record otherwise.
    sub_sequence_number: int = 0
    # ApproximateArrivalTimestamp, as an aware UTC datetime (None in tests
    # that do not care).
    arrived_at: datetime | None = None
    partition_key: str = ""


class Reason(str, Enum):
    """Stable reject reason codes, stored in ``ingest_rejects.reason_code``.

    The values are part of the product's interface: dashboards and replay
    tools filter on them. Add new codes; never rename or reuse one.
    """

    TOO_LARGE = "too_large"
    BAD_COMPRESSION = "bad_compression"
    INVALID_UTF8 = "invalid_utf8"
    NOT_JSON = "not_json"
    TOO_DEEP = "too_deep"
    NON_FINITE_NUMBER = "non_finite_number"
    UNREPRESENTABLE_TEXT = "unrepresentable_text"
    NOT_METERING = "not_metering"
    MISSING_VEN_ID = "missing_ven_id"
    BAD_VEN_ID = "bad_ven_id"
    SPOOFED_VEN_ID = "spoofed_ven_id"
    MISSING_TIMESTAMP = "missing_timestamp"
    BAD_TIMESTAMP = "bad_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    BAD_FIELD = "bad_field"
    TOO_MANY_LOADS = "too_many_loads"
    # A KPL aggregate whose checksum or protobuf is broken: no user record
    # inside it can be trusted, so the whole record is kept as one reject.
    BAD_AGGREGATE = "bad_aggregate"
    # Found during the load, after every check in Python passed: PostgreSQL
    # refused a value, or the sink could not put it into a COPY row.
    DATABASE_REFUSED = "database_refused"
    # The decoder itself failed on this input (a bug): the record is kept so
    # it can be replayed once the bug is fixed, and the shard moves on.
    DECODER_ERROR = "decoder_error"


@dataclass(slots=True)
class Reading:
    """One metering reading, ready for a ``ven_telemetry`` row."""

    ven_id: str
    timestamp: datetime  # aware, UTC, microsecond resolution
    used_power_kw: float | None
    shed_power_kw: float | None
    requested_reduction_kw: float | None
    baseline_power_kw: float | None
    event_id: str | None
    battery_soc: float | None
    # The whole payload as JSON text that jsonb accepts (no NUL, no lone
    # surrogate): usually the record's own bytes, decoded.
    raw_payload: str
    samples: list[LoadSample] = field(default_factory=list)
    meta: RecordMeta | None = None


@dataclass(slots=True, frozen=True)
class Reject:
    """A record that cannot be stored, kept byte for byte with its reason."""

    reason: Reason
    detail: str
    raw: bytes
    meta: RecordMeta | None = None


Decoded = Reading | Reject
