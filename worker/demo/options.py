"""The demo's own knobs (the worker's settings come from ``Settings``).

Light on imports: the CLI reads the defaults here to build
``ven-worker demo --help`` without loading boto3, psycopg or the fleet.
"""

from dataclasses import dataclass
from pathlib import Path

from worker.errors import ConfigError

# VENs in the field publish a metering reading every five seconds.
READING_INTERVAL_S = 5

# Two hundred VENs is a small pilot fleet: enough readings to show four
# shards and two workers sharing the load, few enough for a laptop.
DEFAULT_VENS = 200

# 200 VENs at one reading per 5 s are 40 readings/s; x5 makes 200/s, under
# half the ~450 records/s LocalStack's PutRecords manages alone on a 2-core
# machine, because the workers' reads and the lag probes share the emulator.
# Faster than it takes, sending falls behind its schedule; nothing is lost.
DEFAULT_SPEED = 5.0

# A minute of sending, plus LocalStack and PostgreSQL start-up and the final
# drain, keeps a first run on a fresh machine within a few minutes.
DEFAULT_DURATION_S = 60.0

# One record in a hundred of each: enough that every malformed kind shows up
# in a default run (12,000 readings give 12 of each of ten kinds),
# rare enough that the stored readings dominate the picture.
DEFAULT_DUPLICATE_PERCENT = 1.0
DEFAULT_MALFORMED_PERCENT = 1.0

# The demo drops and re-creates its schema at every start, so it never uses
# the worker's default schema (public), which may hold real data.
DEFAULT_SCHEMA = "ven_demo"
UNSAFE_SCHEMAS = frozenset({"public"})

# Four shards, read by two worker processes of two shards each: the shape of
# two ECS services with SHARDS=1/2 and SHARDS=2/2.
STREAM_SHARDS = 4
WORKER_GROUPS = 2

VIA_PUT = "put"
VIA_MQTT = "mqtt"
VIA_CHOICES = (VIA_PUT, VIA_MQTT)

DEFAULT_MQTT_HOST = "127.0.0.1"
DEFAULT_MQTT_PORT = 1883

# The same fleet every run, so two runs with the same options send the same
# records and a failure can be repeated.
DEFAULT_SEED = 42

# An upper bound for --speed times --vens: far past what LocalStack takes,
# and a typo (--vens 2000000) fails at once instead of swamping memory.
MAX_READINGS_PER_S = 20_000


@dataclass(frozen=True)
class DemoOptions:
    vens: int = DEFAULT_VENS
    speed: float = DEFAULT_SPEED
    duration_s: float = DEFAULT_DURATION_S
    duplicate_percent: float = DEFAULT_DUPLICATE_PERCENT
    malformed_percent: float = DEFAULT_MALFORMED_PERCENT
    via: str = VIA_PUT
    mqtt_host: str = DEFAULT_MQTT_HOST
    mqtt_port: int = DEFAULT_MQTT_PORT
    seed: int = DEFAULT_SEED
    run_dir: Path | None = None  # None: a new folder under the user's cache

    @property
    def readings_per_s(self) -> float:
        """Readings per real second the fleet sends."""
        return self.vens / READING_INTERVAL_S * self.speed

    @property
    def rounds(self) -> int:
        """Reading rounds (every VEN reports once per round) in the run."""
        simulated_s = self.duration_s * self.speed
        return max(1, round(simulated_s / READING_INTERVAL_S))

    @property
    def round_interval_s(self) -> float:
        """Real seconds between two rounds."""
        return READING_INTERVAL_S / self.speed

    def check(self) -> "DemoOptions":
        """The options, or ConfigError naming every mistake, one a line."""
        problems = []
        if self.vens < 1:
            problems.append(f"--vens must be 1 or more, got {self.vens}")
        if not self.speed > 0:
            problems.append(f"--speed must be more than 0, got {self.speed:g}")
        if not self.duration_s > 0:
            problems.append(f"--duration must be more than 0 seconds, got "
                            f"{self.duration_s:g}")
        for flag, share in (("--duplicates", self.duplicate_percent),
                            ("--malformed", self.malformed_percent)):
            if not 0 <= share <= 50:
                problems.append(f"{flag} must be a percentage from 0 to 50, "
                                f"got {share:g}")
        if self.via not in VIA_CHOICES:
            problems.append(f"--via must be one of {', '.join(VIA_CHOICES)}, "
                            f"got {self.via}")
        if not problems and self.readings_per_s > MAX_READINGS_PER_S:
            problems.append(
                f"--vens {self.vens} at --speed {self.speed:g} is "
                f"{self.readings_per_s:,.0f} readings/s, more than the "
                f"{MAX_READINGS_PER_S:,} the demo allows")
        if problems:
            raise ConfigError("\n".join(problems))
        return self
