"""``decode_record``: the one entry point from record bytes to a Reading or a
Reject. The steps, each raising ``Invalid`` on a fault: size limit, gzip,
text repair and JSON parse (``payload``), then fields (``reading``).
"""

import logging

from worker.records.invalid import Invalid
from worker.records.model import Reading, Reason, RecordMeta, Reject
from worker.records.payload import parse_payload
from worker.records.policy import DEFAULT_POLICY, DecodePolicy
from worker.records.reading import build_reading

logger = logging.getLogger(__name__)


def decode_record(data: bytes, meta: RecordMeta | None = None,
                  policy: DecodePolicy = DEFAULT_POLICY) -> Reading | Reject:
    """Never raises: every input becomes a Reading or a Reject whose raw
    bytes are ``data`` exactly as given."""
    try:
        return _decode(data, meta, policy)
    except Invalid as exc:
        return Reject(exc.reason, exc.detail, _raw(data), meta)
    except Exception as exc:
        # NOTE: a bug here must not stall the shard; the record is kept as a
        # reject (replayable once fixed) and the traceback goes to the log.
        shard, seq, sub = _position(meta)
        logger.exception("decoder failed on shard %s seq %s/%s", shard, seq, sub)
        return Reject(Reason.DECODER_ERROR,
                      f"decoder error {type(exc).__name__}: {exc}"[:500],
                      _raw(data), meta)


def _decode(data: bytes, meta: RecordMeta | None,
            policy: DecodePolicy) -> Reading:
    if type(data) is not bytes:
        data = _as_bytes(data)
    if len(data) > policy.max_record_bytes:
        raise Invalid(Reason.TOO_LARGE,
                      f"record is {len(data)} bytes, more than "
                      f"{policy.max_record_bytes}")

    payload, text = parse_payload(data, policy.max_inflated_bytes)
    return build_reading(payload, text, meta, policy)


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise Invalid(Reason.DECODER_ERROR,
                  f"record data is {type(data).__name__}, not bytes")


def _raw(data: object) -> bytes:
    try:
        return _as_bytes(data) if type(data) is not bytes else data
    except Invalid:
        return b""


def _position(meta: RecordMeta | None) -> tuple[str, str, int]:
    if meta is None:
        return "?", "?", 0
    return meta.shard_id, meta.sequence_number, meta.sub_sequence_number
