"""What the demo shows on stdout. Logs go to files; this is for people."""

import contextlib
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from worker.demo.fleet import PRODUCTION_KEY
from worker.demo.malformed import KINDS
from worker.demo.options import (
    READING_INTERVAL_S,
    STREAM_SHARDS,
    VIA_MQTT,
    DemoOptions,
)
from worker.demo.progress import HEADER
from worker.demo.reconcile import Reconciliation
from worker.observe.logs import MaskSecrets, TextFormatter

LABEL_WIDTH = 11


def say(line: str = "") -> None:
    print(line, flush=True)


def item(label: str, text: str) -> None:
    say(f"  {label:<{LABEL_WIDTH}} {text}")


def default_run_dir(run_id: str) -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ven-worker" / "demo-runs" / run_id


def header(options: DemoOptions, stream: str, run_dir: Path) -> None:
    say(f"ven-worker demo: {options.vens:,} VENs, one reading every "
        f"{READING_INTERVAL_S} s each, time x{options.speed:g} "
        f"({options.readings_per_s:,.0f} readings/s), "
        f"{options.duration_s:g} s of sending")
    reasons = sorted({kind.reason.value for kind in KINDS})
    item("mix", f"{options.duplicate_percent:g}% duplicate payloads sent "
         f"again as new records, {options.malformed_percent:g}% malformed "
         f"records of {len(KINDS)} kinds ({', '.join(reasons)})")
    how = ("MQTT through the IoT-rule forwarder" if options.via == VIA_MQTT
           else "direct PutRecords (--via mqtt goes through a broker)")
    item("sending", how)
    item("keys", f"partition key ${{venId}} spreads VENs over the "
         f"{STREAM_SHARDS} shards (the production rule's constant key "
         f"'{PRODUCTION_KEY}' would put every record on one shard)")
    item("run folder", str(run_dir))


def span_text(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest} s"


def utc_text(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S UTC")


def progress_header() -> str:
    return HEADER


def reconciliation(schema: str, stream: str, result: Reconciliation) -> None:
    say()
    say(f"reconciliation (stream {stream}, schema {schema}, this run only)")
    for line in result.lines:
        say(line)
    say()
    if result.balanced:
        say("BALANCED: every record sent is stored once, counted as a "
            "duplicate, or rejected with its expected reason")
        return
    say(f"NOT BALANCED: {len(result.problems)} problem(s)")
    for problem in result.problems:
        say(f"  - {problem}")


@contextlib.contextmanager
def logs_in_file(path: Path):
    """While the demo runs, its log records go to ``path``; the terminal
    keeps only warnings and errors, so the progress stays readable."""
    root = logging.getLogger()
    terminal = [(handler, handler.level) for handler in root.handlers]
    for handler, level in terminal:
        handler.setLevel(max(level, logging.WARNING))
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(TextFormatter())
    to_file.addFilter(MaskSecrets())
    root.addHandler(to_file)
    try:
        yield
    finally:
        root.removeHandler(to_file)
        to_file.close()
        for handler, level in terminal:
            handler.setLevel(level)
