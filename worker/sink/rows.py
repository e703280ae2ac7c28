"""Readings as binary COPY rows, and the batch checks that need no database.

No I/O here, so the rows handed to COPY are unit-tested without a server.

Why binary COPY: measured on the 2-core development machine
(bench/bench_sink.py), PostgreSQL spends about a quarter less CPU per
reading than on text COPY (no floats or timestamps to parse), and psycopg
builds the rows in C for about half the client CPU of formatting text in
Python. Text COPY let PostgreSQL judge every value; two guards keep that
safety here:

- psycopg's binary int4 dumper wraps an integer that does not fit (2**31 is
  sent as -2**31), so ``priority``, the one integer column, is range-checked
  while its row is built;
- a value of the wrong Python type fails in the client, in the middle of
  the COPY. ``write_rows`` turns that into ``Unsendable``, which the load
  treats like a value PostgreSQL refused: the reading is pinned down and
  rejected, and every other reading of the batch is stored.
"""

import struct
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from psycopg.adapt import PyFormat

from worker.records.model import SAMPLE_COLUMNS, Reading, Reason, Reject

TELEMETRY_COPY_COLUMNS = (
    "id",
    "ven_id",
    "timestamp",
    "used_power_kw",
    "shed_power_kw",
    "requested_reduction_kw",
    "baseline_power_kw",
    "event_id",
    "battery_soc",
    "raw_payload",
    "shard_id",
    "sequence_number",
    "sub_sequence_number",
    "arrived_at",
)
SAMPLE_COPY_COLUMNS = ("telemetry_id", "reading_timestamp") + SAMPLE_COLUMNS

# The psycopg dumper for each column, in COPY column order. The jsonb
# columns go through the bytea dumper: jsonb's binary form is a version byte
# and the JSON text, which ``jsonb_bytes`` builds and bytea sends untouched.
# (psycopg's own jsonb dumper would serialise a str as a JSON string.)
TELEMETRY_COPY_TYPES = (
    "int8", "text", "timestamptz", "float8", "float8", "float8", "float8",
    "text", "float8", "bytea", "text", "text", "int8", "timestamptz",
)
SAMPLE_COPY_TYPES = (
    "int8", "timestamptz", "text", "text", "text", "float8", "float8",
    "float8", "bool", "int4", "bytea",
)

# PostgreSQL's names for the dumpers above, for messages.
_TYPE_NAMES = {
    "int8": "bigint", "int4": "integer", "text": "text", "bool": "boolean",
    "float8": "double precision", "timestamptz": "timestamp with time zone",
    "bytea": "jsonb",
}

# One row waiting for COPY: (telemetry id, reading).
Row = tuple[int, Reading]

_JSONB_VERSION = b"\x01"
_INT4_MIN = -(2**31)
_INT4_MAX = 2**31 - 1
_PRIORITY = SAMPLE_COPY_COLUMNS.index("priority")


def use_c_bytea_dumper(conn) -> None:
    """Make ``set_types(["bytea"])`` pick psycopg's C dumper for bytes.

    By type name psycopg finds the dumper of its DB-API ``Binary`` wrapper,
    a Python function called once per jsonb value, about a tenth of the
    client's COPY time. Registering the C dumper for ``bytes`` again puts it
    first for the bytea type too, on this connection only.
    """
    conn.adapters.register_dumper(
        bytes, conn.adapters.get_dumper(bytes, PyFormat.BINARY)
    )


class Unsendable(ValueError):
    """A value the client cannot put into a binary COPY row."""


def jsonb_bytes(text: str) -> bytes:
    """JSON text in jsonb's binary form. A lone surrogate cannot be UTF-8
    and raises here, before anything is sent."""
    if type(text) is not str:
        raise Unsendable(
            f"raw_payload: a {type(text).__name__} is not JSON text"
        )
    try:
        return _JSONB_VERSION + text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Unsendable(
            f"raw_payload: JSON text is not UTF-8 ({exc.reason})"
        ) from None


def telemetry_row(row: Row) -> tuple:
    telemetry_id, r = row
    meta = r.meta
    if meta is None:
        provenance = (None, None, None, None)
    else:
        provenance = (meta.shard_id, meta.sequence_number,
                      meta.sub_sequence_number, meta.arrived_at)
    return (
        telemetry_id, r.ven_id, r.timestamp, r.used_power_kw, r.shed_power_kw,
        r.requested_reduction_kw, r.baseline_power_kw, r.event_id,
        r.battery_soc, jsonb_bytes(r.raw_payload), *provenance,
    )


def sample_rows(row: Row) -> Iterator[tuple]:
    telemetry_id, r = row
    stamp = r.timestamp
    for (load_id, name, kind, capacity, power, shed, enabled, priority,
         raw) in r.samples:
        if priority is not None and type(priority) is int and not (
                _INT4_MIN <= priority <= _INT4_MAX):
            raise Unsendable(
                f"priority: value {priority} is out of range for type "
                "integer"
            )
        yield (telemetry_id, stamp, load_id, name, kind, capacity, power,
               shed, enabled, priority, jsonb_bytes(raw))


def telemetry_rows(rows: Iterable[Row]) -> Iterator[tuple]:
    for row in rows:
        yield telemetry_row(row)


def all_sample_rows(rows: Iterable[Row]) -> Iterator[tuple]:
    for row in rows:
        yield from sample_rows(row)


def write_rows(copy, rows: Iterable[tuple], columns: Sequence[str],
               types: Sequence[str]) -> None:
    """``copy.write_row`` for each row; a value psycopg cannot dump raises
    ``Unsendable`` naming its column. The COPY must then be abandoned: a
    failed row may have left part of itself in psycopg's buffer."""
    write = copy.write_row
    for values in rows:
        try:
            write(values)
        except (TypeError, ValueError, OverflowError, struct.error) as exc:
            raise Unsendable(_which_field(values, columns, types, exc)) from exc


def _which_field(values: tuple, columns, types, error: Exception) -> str:
    """The column of the first value whose Python type its dumper cannot
    take, for the reject's detail; the dumper's own words otherwise."""
    for value, column, kind in zip(values, columns, types):
        if value is not None and not _fits(value, kind):
            return (f"{column}: a {type(value).__name__} cannot be sent as "
                    f"{_TYPE_NAMES[kind]} ({error})")
    return f"a value cannot be sent: {error}"


def _fits(value, kind: str) -> bool:
    if kind == "float8":
        return type(value) in (float, int)
    if kind in ("int8", "int4"):
        return type(value) is int
    if kind == "text":
        return type(value) is str and _is_utf8(value)
    if kind == "bool":
        return type(value) is bool
    if kind == "timestamptz":
        return isinstance(value, datetime) and value.tzinfo is not None
    return type(value) is bytes


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reading_key(reading: Reading) -> tuple:
    """What makes a reading one reading: (ven_id, timestamp)."""
    return reading.ven_id, reading.timestamp


def split_repeats(readings: Sequence[Reading]
                  ) -> tuple[list[Reading], list[Reading]]:
    """The first reading of each key, and the later repeats, each in the
    order given."""
    seen = set()
    first, repeats = [], []
    for r in readings:
        key = reading_key(r)
        if key in seen:
            repeats.append(r)
        else:
            seen.add(key)
            first.append(r)
    return first, repeats


def unstorable_key(reading: Reading) -> str | None:
    """Why PostgreSQL could never hold this reading's ven_id, or None.

    The key goes into the duplicate probe as a query parameter, where a NUL
    or a lone surrogate would fail the whole batch in the client; such a
    reading is refused alone instead.
    """
    ven_id = reading.ven_id
    if type(ven_id) is not str:
        return f"ven_id is a {type(ven_id).__name__}, not text"
    if "\x00" in ven_id:
        return "ven_id contains a NUL character, which PostgreSQL text refuses"
    if not ven_id.isascii() and not _is_utf8(ven_id):
        return "ven_id contains a lone surrogate, which is not UTF-8"
    return None


def refused(reading: Reading, detail: str) -> Reject:
    """A reading PostgreSQL will not hold, as a reject.

    Its raw bytes are ``raw_payload`` encoded as UTF-8 (lone surrogates
    kept as their 3-byte forms): the decoder already turned the record's
    bytes into that text, and for the usual record it is the record itself.
    The reject carries the reading's own ``meta`` object, which is how a
    redrive (``worker.sink.redrive``) tells which reading was refused.
    """
    raw = reading.raw_payload.encode("utf-8", "surrogatepass")
    return Reject(Reason.DATABASE_REFUSED, detail, raw, reading.meta)


def storable_text(text: str) -> str:
    """``text`` with what PostgreSQL text cannot hold (NUL, lone surrogates)
    written as escapes, for messages kept next to a reject."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
