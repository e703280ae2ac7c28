"""Every setting of the worker: its flag, environment variable, default and
check, defined once on the ``Settings`` fields.

The CLI builds its flags from these definitions, the README table is rendered
from them, and ``load_settings`` reads flags first, then environment variables
(ECS task definitions set only those), then the defaults. All mistakes are
collected and reported together, one line each.
"""

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any

from worker.errors import ConfigError
from worker.kinesis.selector import SelectorError, parse_selector

KIB = 1024
MIB = 1024 * KIB

# Groups of related settings in `--help`; the README lists fields in order.
STREAM = "stream"
DATABASE = "database"
READING = "reading"
LEASES = "lease"
STORAGE = "storage"
OBSERVE = "observability"

INITIAL_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")

# GetRecords returns at most 10,000 records per call; asking for the maximum
# lets a shard that is behind catch up in the fewest round trips, and the
# in-flight byte budget (not this count) is what bounds memory.
GETRECORDS_LIMIT = 10_000

# A shard allows 5 GetRecords calls per second shared by all its consumers.
# Waiting one second after an empty answer keeps one reader at a fifth of that
# budget while adding at most a second of latency to a quiet shard.
DEFAULT_IDLE_INTERVAL_S = 1.0

# A shard iterator expires five minutes after it was issued, so a reader must
# call again well before that or lose its place.
ITERATOR_LIFETIME_S = 300.0

# Ten seconds lets a crashed worker's shards move to a survivor within about
# ten seconds, while a renewal (every third of it) can be late twice, for a
# slow database or a long GC pause, before the lease is lost.
DEFAULT_LEASE_DURATION_S = 10.0
RENEWALS_PER_LEASE = 3

# Resharding is an operator action that takes minutes to settle; a minute
# finds new child shards soon enough at one ListShards call per worker.
DEFAULT_DISCOVERY_INTERVAL_S = 60.0

# Memory held by fetched pages not yet stored, across all shards of the
# process: their record bytes and the decoded readings, estimated at six
# times the record bytes (see worker/runtime/consumer.py). Pages are sized to
# fit, so the budget bounds the process whatever the shard count. Measured
# with bench/bench_memory.py (500,000 records on 8 shards, about 100 MB of
# it the process itself): a 96 MiB budget peaked at 287 MB of RSS, too near
# the 300 MB goal; 80 MiB leaves room. A lone shard still gets pages of
# about 5,000 typical readings, and 8 busy shards could each take 3,000
# records/s, several times what one process stores.
DEFAULT_MAX_INFLIGHT_BYTES = 80 * MIB

# AWS IoT caps an MQTT message at 128 KiB, so a larger record did not come
# from the rule as a plain reading; 1 MiB leaves room for KPL aggregates while
# bounding what one record may cost to decode (decompressed size included).
DEFAULT_MAX_RECORD_BYTES = 1 * MIB

# A VEN clock an hour fast is a time-zone slip and still worth storing; a
# reading further ahead is a broken clock and would open partitions for days
# that have not happened.
DEFAULT_MAX_FUTURE_SKEW_S = 3600

# A week of daily partitions made ahead means a reading near midnight never
# waits on DDL, and a stopped partition job has a week before loads fail.
DEFAULT_PARTITIONS_AHEAD_DAYS = 7

# 9108 sits in the range the Prometheus community uses for exporters and is
# not claimed by a well-known one.
DEFAULT_METRICS_PORT = 9108

SECONDS_PER_DAY = 86_400

_STREAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
_SIZE = re.compile(r"^\s*([0-9]+)\s*(B|KiB|MiB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": KIB, "MiB": MIB, "GiB": 1024 * MIB}


class SettingsInvalid(ConfigError):
    """One or more settings are wrong; the message has one line per mistake."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


# -- parsers: text -> value, or ValueError saying what is expected ----------


def _choice(*allowed: str, upper: bool = True) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip().upper() if upper else value.strip().lower()
        if value not in allowed:
            raise ValueError("must be one of " + ", ".join(allowed))
        return value

    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"must be from {low} to {high}")
        return number

    return parse


def _seconds(low_exclusive: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError("must be a number of seconds") from None
        if not (math.isfinite(number) and low_exclusive < number <= high):
            raise ValueError(f"must be more than {low_exclusive:g} and at most "
                             f"{high:g} seconds")
        return number

    return parse


def _size(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        match = _SIZE.match(value)
        if not match:
            raise ValueError("must be a byte count, optionally with KiB, MiB "
                             "or GiB (e.g. 64MiB)")
        number = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
        if not low <= number <= high:
            raise ValueError(f"must be from {format_size(low)} to "
                             f"{format_size(high)}")
        return number

    return parse


def _stream_name(value: str) -> str:
    value = value.strip()
    if not _STREAM_NAME.match(value):
        raise ValueError("must be 1-128 letters, digits, _ . or -")
    return value


def _database_url(value: str) -> str:
    import psycopg.conninfo  # late: only needed when a URL is given

    try:
        psycopg.conninfo.conninfo_to_dict(value)
    except psycopg.ProgrammingError:
        raise ValueError("is not a PostgreSQL URL or key=value string") from None
    return value.strip()


def _schema(value: str) -> str:
    from worker.db.connect import check_schema_name

    try:
        return check_schema_name(value.strip())
    except ConfigError:
        raise ValueError("must be a plain lower-case identifier (letters, "
                         "digits and _, not starting with a digit)") from None


def _endpoint(value: str) -> str:
    from urllib.parse import urlsplit

    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def _region(value: str) -> str:
    value = value.strip()
    if not _REGION.match(value):
        raise ValueError("is not an AWS region name (like us-east-1)")
    return value


def _shards(value: str) -> str:
    value = value.strip()
    try:
        parse_selector(value)
    except SelectorError as exc:
        raise ValueError(f"is not a shard selector: {exc.detail}") from None
    return value


def _worker_id(value: str) -> str:
    value = value.strip()
    if not value or len(value) > 200 or any(ch.isspace() for ch in value):
        raise ValueError("must be 1-200 characters without spaces")
    return value


def parse_timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("is not an ISO-8601 time (like "
                         "2025-12-01T00:00:00Z)") from None
    # A time without an offset is read as UTC, the only zone the worker uses.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _host(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must be an address to listen on (0.0.0.0 for all)")
    return value


def format_size(n: int) -> str:
    for unit, size in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# -- the settings --------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """How one setting is given and checked."""

    name: str
    env: tuple[str, ...]  # the first is the setting's own; the rest fallbacks
    parse: Callable[[str], Any]
    help: str
    group: str
    default: Any
    default_text: str
    metavar: str
    secret: bool = False
    show: Callable[[Any], str] = str  # the value as people read it

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return f"{self.env[0]} ({self.flag})"


def setting(default, env, parse, help, group, *, fallback_env=(),
            default_text=None, metavar="VALUE", secret=False, show=None):
    """A Settings field carrying its Option (the name is filled in later)."""
    show = show or _show
    if default_text is None:
        default_text = show(default)
    spec = dict(env=(env, *fallback_env), parse=parse, help=help, group=group,
                default=default, default_text=default_text, metavar=metavar,
                secret=secret, show=show)
    return field(default=default, metadata={"option": spec})


@dataclass(frozen=True)
class Settings:
    stream_name: str = setting(
        "mqtt-forward-mqtt-stream", "STREAM_NAME", _stream_name,
        "Kinesis stream the IoT rule forwards metering messages into.",
        STREAM, metavar="NAME")
    kinesis_endpoint: str | None = setting(
        None, "KINESIS_ENDPOINT", _endpoint,
        "Kinesis endpoint URL, e.g. LocalStack's http://127.0.0.1:4566.",
        STREAM, fallback_env=("LOCALSTACK_ENDPOINT",),
        default_text="real AWS", metavar="URL")
    aws_region: str = setting(
        "us-east-1", "AWS_REGION", _region, "AWS region of the stream.",
        STREAM, fallback_env=("AWS_DEFAULT_REGION",), metavar="REGION")
    shards: str = setting(
        "all", "SHARDS", _shards,
        "Shards this worker may lease: all, group G/N of the open shards, or "
        "a comma list of shard ids.", STREAM, metavar="SELECTOR")
    initial_position: str = setting(
        "TRIM_HORIZON", "INITIAL_POSITION", _choice(*INITIAL_POSITIONS),
        "Where to start a shard that has no checkpoint: "
        + ", ".join(INITIAL_POSITIONS) + " (LATEST is fixed when the shard "
        "is first leased, so a restart does not skip ahead).", READING,
        metavar="POSITION")
    initial_timestamp: datetime | None = setting(
        None, "INITIAL_TIMESTAMP", parse_timestamp,
        "ISO-8601 start time, required with AT_TIMESTAMP.", READING,
        default_text="none", metavar="TIME")
    max_records: int = setting(
        GETRECORDS_LIMIT, "MAX_RECORDS", _int_in(1, GETRECORDS_LIMIT),
        "Records asked for per GetRecords call (1-10000).", READING,
        metavar="N")
    idle_interval_s: float = setting(
        DEFAULT_IDLE_INTERVAL_S, "IDLE_INTERVAL_S",
        _seconds(0, ITERATOR_LIFETIME_S - 60),
        "Seconds to wait after a GetRecords call that returned nothing.",
        READING, metavar="SECONDS")
    max_inflight_bytes: int = setting(
        DEFAULT_MAX_INFLIGHT_BYTES, "MAX_INFLIGHT_BYTES", _size(MIB, 1024 * MIB),
        "Memory for fetched records not yet stored, across all shards "
        "(record bytes x6, for the decoded readings); readers wait when it "
        "is reached.", READING, show=format_size,
        metavar="BYTES")
    max_record_bytes: int = setting(
        DEFAULT_MAX_RECORD_BYTES, "MAX_RECORD_BYTES", _size(KIB, 16 * MIB),
        "Largest record (decompressed) that is decoded; larger ones are "
        "rejected as too_large.", READING, show=format_size,
        metavar="BYTES")
    worker_id: str | None = setting(
        None, "WORKER_ID", _worker_id,
        "This worker's name in the lease table; must differ between "
        "workers running at the same time.", LEASES,
        default_text="ECS task ARN, else host:pid:random", metavar="ID")
    lease_duration_s: float = setting(
        DEFAULT_LEASE_DURATION_S, "LEASE_DURATION_S", _seconds(0, 3600),
        "Seconds a lease lasts without renewal before another worker may "
        "take the shard.", LEASES, metavar="SECONDS")
    renew_interval_s: float | None = setting(
        None, "RENEW_INTERVAL_S", _seconds(0, 3600),
        "Seconds between lease renewals; must be under the lease duration.",
        LEASES, default_text="lease duration / 3", metavar="SECONDS")
    discovery_interval_s: float = setting(
        DEFAULT_DISCOVERY_INTERVAL_S, "DISCOVERY_INTERVAL_S",
        _seconds(0, 86_400),
        "Seconds between shard listings that find new (child) shards.",
        LEASES, metavar="SECONDS")
    database_url: str | None = setting(
        None, "DATABASE_URL", _database_url,
        "PostgreSQL URL; prefer the environment variable, as flags show in "
        "process lists.", DATABASE, default_text="embedded PostgreSQL",
        metavar="URL", secret=True)
    pg_schema: str = setting(
        "public", "PG_SCHEMA", _schema,
        "PostgreSQL schema holding the worker's tables.", DATABASE,
        metavar="SCHEMA")
    max_future_skew_s: int = setting(
        DEFAULT_MAX_FUTURE_SKEW_S, "MAX_FUTURE_SKEW_S", _int_in(0, 7 * 86_400),
        "Readings further ahead of the worker's clock are rejected as "
        "timestamp_out_of_range.", STORAGE, metavar="SECONDS")
    retention_days: int = setting(
        0, "RETENTION_DAYS", _int_in(0, 100 * 366),
        "Days of readings kept; older daily partitions are dropped. "
        "0 keeps everything.", STORAGE, default_text="0 (keep all)",
        metavar="DAYS")
    partitions_ahead_days: int = setting(
        DEFAULT_PARTITIONS_AHEAD_DAYS, "PARTITIONS_AHEAD_DAYS", _int_in(1, 366),
        "Daily partitions created ahead of today.", STORAGE, metavar="DAYS")
    metrics_port: int = setting(
        DEFAULT_METRICS_PORT, "METRICS_PORT", _int_in(0, 65_535),
        "Port serving /metrics and /healthz; 0 turns it off.", OBSERVE,
        metavar="PORT")
    metrics_host: str = setting(
        "0.0.0.0", "METRICS_HOST", _host,
        "Address the metrics and health server listens on.", OBSERVE,
        metavar="HOST")
    log_level: str = setting(
        "INFO", "LOG_LEVEL", _choice(*LOG_LEVELS),
        "Lowest level logged: " + ", ".join(LOG_LEVELS) + ".", OBSERVE,
        metavar="LEVEL")
    log_format: str = setting(
        "json", "LOG_FORMAT", _choice(*LOG_FORMATS, upper=False),
        "Log lines on stderr: json (one object per line) or text.", OBSERVE,
        metavar="FORMAT")

    def __post_init__(self) -> None:
        # A derived default; frozen, so set through object.__setattr__.
        # worker_id stays None when not given: the runtime asks the lease
        # package for an identity (the ECS task ARN when there is one).
        if self.renew_interval_s is None:
            object.__setattr__(self, "renew_interval_s",
                               self.lease_duration_s / RENEWALS_PER_LEASE)

    def describe(self) -> dict[str, str]:
        """Every setting as text, secrets masked: for the start-up log and
        ``ven-worker config``."""
        from worker.db.connect import mask_url

        shown = {}
        for option in OPTIONS:
            value = getattr(self, option.name)
            if value is None:
                shown[option.name] = option.default_text
            elif option.secret:
                shown[option.name] = mask_url(str(value))
            else:
                shown[option.name] = option.show(value)
        return shown


def _options() -> tuple[Option, ...]:
    return tuple(Option(name=f.name, **f.metadata["option"])
                 for f in fields(Settings))


OPTIONS = _options()
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


# -- loading and checking ------------------------------------------------


def load_settings(flags: Mapping[str, str | None] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (by field name), then the environment, then the
    defaults. An empty value counts as not given.

    Raises SettingsInvalid naming every mistake, one line each.
    """
    flags = flags or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    failed: set[str] = set()

    for option in OPTIONS:
        raw, source = _raw_value(option, flags, environ)
        if raw is None:
            continue
        try:
            values[option.name] = option.parse(raw)
        except ValueError as exc:
            shown = "(hidden)" if option.secret else repr(raw)
            problems.append(f"{source} {exc}, got {shown}")
            failed.add(option.name)

    settings = Settings(**values)
    for names, problem in cross_check(settings):
        if not failed.intersection(names):
            problems.append(problem)

    if problems:
        raise SettingsInvalid(problems)
    return settings


def _raw_value(option: Option, flags, environ) -> tuple[str | None, str]:
    given = flags.get(option.name)
    if given is not None and given.strip():
        return given, option.flag
    for name in option.env:
        given = environ.get(name)
        if given is not None and given.strip():
            return given, name
    return None, option.label


def cross_check(s: Settings) -> list[tuple[tuple[str, ...], str]]:
    """Mistakes between settings: (the fields involved, one line)."""
    found = []
    if s.initial_position == "AT_TIMESTAMP" and s.initial_timestamp is None:
        found.append((("initial_position", "initial_timestamp"),
                      "INITIAL_POSITION AT_TIMESTAMP needs INITIAL_TIMESTAMP "
                      "(--initial-timestamp), an ISO-8601 time"))
    if s.initial_position != "AT_TIMESTAMP" and s.initial_timestamp is not None:
        found.append((("initial_position", "initial_timestamp"),
                      f"INITIAL_TIMESTAMP is only used with INITIAL_POSITION "
                      f"AT_TIMESTAMP, but the position is {s.initial_position}"))
    if s.renew_interval_s >= s.lease_duration_s:
        found.append((("renew_interval_s", "lease_duration_s"),
                      f"RENEW_INTERVAL_S {s.renew_interval_s:g} must be under "
                      f"LEASE_DURATION_S {s.lease_duration_s:g}, or leases "
                      f"expire between renewals"))
    if s.max_record_bytes > s.max_inflight_bytes:
        found.append((("max_record_bytes", "max_inflight_bytes"),
                      f"MAX_RECORD_BYTES {format_size(s.max_record_bytes)} "
                      f"exceeds MAX_INFLIGHT_BYTES "
                      f"{format_size(s.max_inflight_bytes)}: such a record "
                      f"could be fetched only while no other page is in "
                      f"flight, stalling its shard"))
    if s.partitions_ahead_days * SECONDS_PER_DAY < s.max_future_skew_s:
        found.append((("partitions_ahead_days", "max_future_skew_s"),
                      f"PARTITIONS_AHEAD_DAYS {s.partitions_ahead_days} does "
                      f"not cover MAX_FUTURE_SKEW_S {s.max_future_skew_s}: "
                      f"accepted future readings would have no partition"))
    return found


def ensure_database_url(settings: Settings) -> Settings:
    """The settings with a database URL: the embedded server's when none is
    configured (it is started, or reused, here)."""
    if settings.database_url:
        return settings
    from worker.db.embedded import start_embedded

    return replace(settings, database_url=start_embedded())


# -- the README table ----------------------------------------------------

TABLE_HEADER = ("Environment variable", "Flag", "Default", "Meaning")


def config_table_rows() -> list[tuple[str, str, str, str]]:
    rows = []
    for option in OPTIONS:
        env = " / ".join(f"`{name}`" for name in option.env)
        rows.append((env, f"`{option.flag}`", option.default_text,
                     option.help))
    return rows


def render_config_table() -> str:
    """The configuration table as Markdown, one row per setting."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |",
             "|" + "---|" * len(TABLE_HEADER)]
    for row in config_table_rows():
        cells = (cell.replace("|", "\\|") for cell in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
