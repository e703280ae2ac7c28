"""KCL-style Kinesis shard worker that loads VEN metering telemetry into
PostgreSQL exactly once."""

__version__ = "0.1.0"
