"""Readings as COPY text, and the batch checks that need no database.

No I/O here, so the exact bytes sent to PostgreSQL are unit-tested.

Why text COPY that this module formats, rather than psycopg's binary COPY:
measured on the 2-core development machine, binary was 3-15 % faster on
wall time (the server skips parsing floats and timestamps), but psycopg's
binary int4 dumper silently wraps integers out of range (a priority of 2**31
is stored as -2147483648), and wrong Python types fail in the client in the
middle of a COPY. In text form PostgreSQL judges every value itself, so any
value it cannot hold becomes a DATABASE_REFUSED reject carrying its own
error message, and nothing is stored wrong.
"""

from collections.abc import Iterator, Sequence
from datetime import datetime

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

# Readings formatted per write to the COPY stream: about 64 KB of telemetry
# text and twice that of samples with 8 circuits. PostgreSQL parses one chunk
# while Python formats the next, and a batch's text is never held whole in
# memory. Between 16 and 2,000 readings per chunk the load time did not move
# beyond the shared machine's noise; smaller chunks only add calls.
COPY_CHUNK_READINGS = 64

# One row waiting for COPY: (telemetry id, timestamp as COPY text, reading).
Row = tuple[int, str, Reading]

_NULL = "\\N"
_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
)


def copy_text(value) -> str:
    """One field of COPY text: escaped so no value can end a field or a row.

    Values of unexpected types go through ``str`` and are escaped too, so a
    wrong type reaches PostgreSQL as one bad field it refuses, never as
    extra fields or rows.
    """
    if value is None:
        return _NULL
    if type(value) is not str:
        value = str(value)
    if "\\" in value or "\n" in value or "\r" in value or "\t" in value:
        return value.translate(_ESCAPES)
    return value


def copy_number(value) -> str:
    if type(value) is float or type(value) is int:
        return repr(value)
    return copy_text(value)


def copy_boolean(value) -> str:
    if value is True:
        return "t"
    if value is False:
        return "f"
    return copy_text(value)


def copy_timestamp(value) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return copy_text(value)


def _encode(lines: list[str]) -> bytes:
    # A lone surrogate cannot be UTF-8: pass it through as the bytes
    # PostgreSQL then refuses for that one reading, instead of failing the
    # whole chunk here.
    return "".join(lines).encode("utf-8", "surrogatepass")


def telemetry_line(row: Row) -> str:
    telemetry_id, stamp, r = row
    meta = r.meta
    if meta is None:
        provenance = "\\N\t\\N\t\\N\t\\N"
    else:
        provenance = "\t".join((
            copy_text(meta.shard_id),
            copy_text(meta.sequence_number),
            copy_number(meta.sub_sequence_number),
            copy_timestamp(meta.arrived_at),
        ))
    return (
        f"{telemetry_id}\t{copy_text(r.ven_id)}\t{stamp}\t"
        f"{copy_number(r.used_power_kw)}\t{copy_number(r.shed_power_kw)}\t"
        f"{copy_number(r.requested_reduction_kw)}\t"
        f"{copy_number(r.baseline_power_kw)}\t{copy_text(r.event_id)}\t"
        f"{copy_number(r.battery_soc)}\t{copy_text(r.raw_payload)}\t"
        f"{provenance}\n"
    )


def sample_lines(row: Row) -> Iterator[str]:
    telemetry_id, stamp, r = row
    prefix = f"{telemetry_id}\t{stamp}\t"
    for s in r.samples:
        # Positions follow SAMPLE_COLUMNS.
        yield (
            f"{prefix}{copy_text(s[0])}\t{copy_text(s[1])}\t"
            f"{copy_text(s[2])}\t{copy_number(s[3])}\t{copy_number(s[4])}\t"
            f"{copy_number(s[5])}\t{copy_boolean(s[6])}\t"
            f"{copy_number(s[7])}\t{copy_text(s[8])}\n"
        )


def telemetry_chunks(rows: Sequence[Row]) -> Iterator[bytes]:
    for start in range(0, len(rows), COPY_CHUNK_READINGS):
        chunk = rows[start:start + COPY_CHUNK_READINGS]
        yield _encode([telemetry_line(row) for row in chunk])


def sample_chunks(rows: Sequence[Row]) -> Iterator[bytes]:
    for start in range(0, len(rows), COPY_CHUNK_READINGS):
        chunk = rows[start:start + COPY_CHUNK_READINGS]
        yield _encode([line for row in chunk for line in sample_lines(row)])


def drop_repeats(readings: Sequence[Reading]) -> tuple[list[Reading], int]:
    """The batch's readings without later repeats of a (ven_id, timestamp)
    key (the first one wins), and how many repeats were dropped."""
    seen = set()
    kept = []
    for r in readings:
        key = (r.ven_id, r.timestamp)
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept, len(readings) - len(kept)


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
    if not ven_id.isascii():
        try:
            ven_id.encode("utf-8")
        except UnicodeEncodeError:
            return "ven_id contains a lone surrogate, which is not UTF-8"
    return None


def refused(reading: Reading, detail: str) -> Reject:
    """A reading PostgreSQL will not hold, as a reject.

    Its raw bytes are ``raw_payload`` encoded as UTF-8 (lone surrogates
    kept as their 3-byte forms): the decoder already turned the record's
    bytes into that text, and for the usual record it is the record itself.
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
