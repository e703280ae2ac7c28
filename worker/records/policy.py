"""The decoder's limits, in one frozen object the caller can tune."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from worker.errors import ConfigError
from worker.records.timestamps import to_micros

# The Kinesis limit on one record's data. A bigger record cannot come from the
# stream, so one that does is a caller's bug or a forged test input.
MAX_RECORD_BYTES = 1024 * 1024

# gzip can turn 1 MiB into gigabytes. A real payload is at most the broker's
# 128 KB MQTT limit plus the few keys the IoT rule adds; four times the Kinesis
# record limit leaves ample room and still bounds the memory one record takes.
MAX_INFLATED_BYTES = 4 * 1024 * 1024

# The smallest load or circuit object (`{"id":"c1"}`, about 12 bytes) fits
# some 11,000 times into a 128 KB MQTT message, so no payload that passed the
# broker reaches 20,000; a gzip record could, and this keeps it from turning
# into an unbounded number of sample rows.
MAX_LOADS_PER_READING = 20_000

# VEN clocks drift and the stream buffers, but a reading from more than an
# hour ahead is a broken clock or a unit mistake (ms read as s), not data.
MAX_FUTURE_SKEW_S = 3600.0

# A sanity bound on the setting itself: beyond this, the skew check is off.
_SKEW_CEILING_S = 10 * 365 * 86400

# No VEN software predates this; older times are a zero or unset clock.
MIN_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DecodePolicy:
    max_record_bytes: int = MAX_RECORD_BYTES
    max_inflated_bytes: int = MAX_INFLATED_BYTES
    max_loads_per_reading: int = MAX_LOADS_PER_READING
    # Measured from the record's arrival time when known (so a replay decides
    # the same way), else from ``now()``.
    max_future_skew_s: float = MAX_FUTURE_SKEW_S
    min_timestamp: datetime = MIN_TIMESTAMP
    now: Callable[[], datetime] = _utc_now
    # Derived once here, not per record: the bounds in microseconds since
    # the epoch, as ``timestamps.parse_timestamp`` compares them.
    min_us: int = field(init=False, repr=False, compare=False)
    skew_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_record_bytes", "max_inflated_bytes",
                     "max_loads_per_reading"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigError(f"{name} must be a positive integer, "
                                  f"got {value!r}")

        skew = self.max_future_skew_s
        is_number = isinstance(skew, int | float) and not isinstance(skew, bool)
        if not is_number or not 0 <= skew <= _SKEW_CEILING_S:
            raise ConfigError("max_future_skew_s must be a number of seconds "
                              f"between 0 and ten years, got {skew!r}")

        if self.min_timestamp.tzinfo is None:
            raise ConfigError("min_timestamp must carry a time zone")

        # The class is frozen; these two are set once, before anyone reads.
        object.__setattr__(self, "min_us", to_micros(self.min_timestamp))
        object.__setattr__(self, "skew_us", int(skew * 1_000_000))


def policy_from(settings) -> DecodePolicy:
    """The decoder's limits as the worker's settings configure them."""
    return DecodePolicy(max_record_bytes=settings.max_record_bytes,
                        max_future_skew_s=settings.max_future_skew_s)


DEFAULT_POLICY = DecodePolicy()
