"""Every benchmark in sequence; prints each figure and rewrites
bench/results.md (and the summary block in README.md) from this run only.

Run:  .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]
      (``make bench`` runs it without options)

--quick uses small sizes to check that everything runs; its report goes to
a temporary file, never over the committed results. A benchmark that fails
is reported as failed and the rest still run; the exit status is then 1.
LocalStack (for the drain) is LOCALSTACK_ENDPOINT, else one answering on
127.0.0.1:4566, else one started by localstack/stack.py, as for the tests.
"""

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import bench_client
import bench_drain
import bench_latency
import bench_memory
from report import render_results, update_readme
from support import (
    BENCH,
    PYTHON,
    REPO,
    database_url,
    load_average,
    localstack,
    machine_summary,
)

# Sizes of a full run (the issue's) and of --quick (minutes, not an hour).
# LocalStack's Kinesis (kinesis-mock) slows as a stream grows: measured on
# this machine, the drain's 50,000 readings took 517 s to put (437 records/s
# at first, 66/s at the end, one putter per shard), and one bare read of
# them 57 s. A full run spends about a quarter of an hour on the drain.
FULL = {
    "decode_seconds": 1.0,
    "sink": ["--readings", "200000", "--rounds", "3"],
    "client": dict(records=100_000, shards=4, rounds=2, profile_pages=5),
    "drain": dict(readings=50_000, shards=4),
    "latency": dict(rate=500, seconds=60),
    "memory": dict(records=500_000, shards=8),
}
QUICK = {
    "decode_seconds": 0.3,
    "sink": ["--readings", "20000", "--naive", "500"],
    "client": dict(records=20_000, shards=4, rounds=1, profile_pages=2),
    "drain": dict(readings=2_000, shards=4),
    "latency": dict(rate=500, seconds=10),
    "memory": dict(records=50_000, shards=8),
}
NAMES = ("decode", "sink", "client", "drain", "latency", "memory")


class Tee(io.TextIOBase):
    """Prints as it goes and keeps a copy for the report."""

    def __init__(self, out):
        self._out = out
        self.text = io.StringIO()

    def write(self, s: str) -> int:
        self._out.write(s)
        self._out.flush()
        return self.text.write(s)


class Outcome:
    def __init__(self, name: str):
        self.name = name
        self.figures: dict = {}
        self.output = ""
        self.error: str | None = None
        self.load_before = load_average()
        self.load_after = ""
        self.seconds = 0.0


def run_here(name: str, function, *args, **kwargs) -> Outcome:
    """A benchmark of this folder, called in this process."""
    outcome = Outcome(name)
    tee = Tee(sys.stdout)
    started = time.monotonic()
    with contextlib.redirect_stdout(tee):
        try:
            outcome.figures = function(*args, **kwargs)
        except Exception:
            print("FAILED:\n" + traceback.format_exc())
            outcome.error = traceback.format_exc().strip().splitlines()[-1]
    outcome.seconds = time.monotonic() - started
    outcome.output = tee.text.getvalue()
    outcome.load_after = load_average()
    return outcome


def run_script(name: str, script: str, args: list[str]) -> Outcome:
    """A benchmark another engineer owns, run as its own process."""
    outcome = Outcome(name)
    started = time.monotonic()
    process = subprocess.run([PYTHON, str(BENCH / script), *args], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    outcome.seconds = time.monotonic() - started
    outcome.output = process.stdout
    print(process.stdout, end="", flush=True)
    if process.returncode != 0:
        outcome.error = f"exit status {process.returncode}"
    outcome.load_after = load_average()
    return outcome


def drain_on_localstack(**kwargs) -> dict:
    with localstack() as endpoint:
        return bench_drain.run(endpoint=endpoint, **kwargs)


def run_all(quick: bool, only: list[str], url: str,
            plots: Path) -> list[Outcome]:
    sizes = QUICK if quick else FULL
    outcomes = []
    for name in only:
        print(f"\n=== {name} (load average {load_average()}) ===", flush=True)
        if name == "decode":
            outcome = run_script(name, "bench_decode.py",
                                 ["--seconds", str(sizes["decode_seconds"])])
        elif name == "sink":
            outcome = run_script(name, "bench_sink.py",
                                 sizes["sink"] + ["--url", url])
        elif name == "client":
            outcome = run_here(name, bench_client.run, url=url,
                               **sizes["client"])
        elif name == "drain":
            outcome = run_here(name, drain_on_localstack, url=url,
                               plot=plots / "drain.png", **sizes["drain"])
        elif name == "latency":
            outcome = run_here(name, bench_latency.run, url=url,
                               **sizes["latency"])
        else:
            outcome = run_here(name, bench_memory.run, url=url,
                               plot=plots / "backlog.png", **sizes["memory"])
        outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes; report to a temporary file")
    parser.add_argument("--only", nargs="+", choices=NAMES, default=NAMES,
                        metavar="NAME", help="run only these: "
                        + ", ".join(NAMES))
    parser.add_argument("--url", default=database_url())
    args = parser.parse_args(argv)

    official = not args.quick and tuple(args.only) == NAMES
    where = BENCH if official else Path(tempfile.mkdtemp(prefix="bench_"))
    command = "make bench" if official else " ".join(
        [".venv/bin/python bench/run_all.py", *(argv or sys.argv[1:])])
    if os.environ.get("LOCALSTACK_ENDPOINT"):
        command = f"LOCALSTACK_ENDPOINT={os.environ['LOCALSTACK_ENDPOINT']} " \
                  + command
    machine = machine_summary()
    started = datetime.now(timezone.utc)
    print(f"{command}: started {started:%Y-%m-%d %H:%M} UTC on "
          f"{machine['cpus']} CPUs, {machine['memory']}, load average "
          f"{machine['load']}")

    outcomes = run_all(args.quick, list(args.only), args.url, where)

    report = where / "results.md"
    text, summary = render_results(outcomes, command, machine, started,
                                   args.quick, plots=where)
    report.write_text(text)
    print(f"\nreport: {report}")
    if official:
        if update_readme(REPO / "README.md", summary):
            print("README.md: performance summary updated")
        else:
            print("README.md: no bench-summary block to update")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
