"""Record bytes -> readings with load samples, or rejects with a reason.

No I/O: everything here is a pure function of the bytes, the record's
metadata and the policy. Payload shapes, field precedence and reason codes
are documented in docs/payloads.md and in ``reading`` and ``samples``.
"""

from worker.records.decode import decode_record
from worker.records.model import (
    SAMPLE_COLUMNS,
    Decoded,
    LoadSample,
    Reading,
    Reason,
    RecordMeta,
    Reject,
)
from worker.records.policy import DEFAULT_POLICY, DecodePolicy

__all__ = [
    "DEFAULT_POLICY",
    "SAMPLE_COLUMNS",
    "DecodePolicy",
    "Decoded",
    "LoadSample",
    "Reading",
    "Reason",
    "RecordMeta",
    "Reject",
    "decode_record",
]
