"""``run_demo``: the whole demo, start to finish.

1. set up: the demo's schema (dropped and re-created), LocalStack, an empty
   stream of four shards, the migrations;
2. start two worker processes, one per shard group, as two ECS services
   would, and wait until they hold every shard;
3. send the simulated fleet's records for the run's duration, with live
   progress from the lease table;
4. wait until the workers have accounted for every record sent, stop them
   with SIGTERM, and reconcile what was sent against the tables.

Exit status 0 only when the reconciliation balances and both workers exit
0. Whatever happens (Ctrl-C included), the children are stopped, and a
LocalStack the demo started is stopped too; one it found running is left.
"""

import json
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime

from worker.config import ensure_database_url
from worker.db import migrate
from worker.db.connect import connect, mask_url
from worker.demo import console
from worker.demo.fleet import Fleet
from worker.demo.interrupts import interrupts_held, signals_as_interrupt
from worker.demo.lag import LiveLag
from worker.demo.options import (
    READING_INTERVAL_S,
    STREAM_SHARDS,
    VIA_MQTT,
    WORKER_GROUPS,
    DemoOptions,
)
from worker.demo.processes import (
    Child,
    free_port,
    start_forwarder,
    start_worker,
)
from worker.demo.progress import (
    ProgressLine,
    ShardRow,
    accounted,
    owners,
    read_shards,
)
from worker.demo.publish import MqttPublisher, PutPublisher
from worker.demo.reconcile import read_stored, reconcile
from worker.demo.sender import Sender
from worker.demo.services import (
    SCRIPTS,
    check_broker,
    demo_schema,
    load_stack,
    recreate_stream,
    reset_schema,
)
from worker.demo.tally import Tally
from worker.demo.workers import child_env, worker_env
from worker.errors import WorkerError
from worker.kinesis.client import make_boto3_client

log = logging.getLogger(__name__)

# Two seconds between progress lines: rates settle, and a minute-long run
# prints about thirty lines.
PROGRESS_INTERVAL_S = 2.0

# Workers start in a few seconds and take their shards on the first lease
# cycle; a slow first start (imports, a cold database) gets far longer.
LEASES_DEADLINE_S = 90.0
LEASES_POLL_S = 0.5

# After the last put, the workers read what is left. Here they catch up
# within seconds; the deadline only ends a run whose workers are stuck.
DRAIN_DEADLINE_S = 180.0


def run_demo(settings, options: DemoOptions) -> int:
    return Demo(settings, options.check()).run()


class Demo:
    def __init__(self, settings, options: DemoOptions):
        self.options = options
        self.schema = demo_schema(settings.pg_schema)
        self.settings = replace(settings, pg_schema=self.schema)
        self.url: str | None = None  # resolved in _set_up
        self.stream = settings.stream_name
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.run_id = f"{stamp}-{uuid.uuid4().hex[:4]}"
        self.run_dir = options.run_dir or console.default_run_dir(self.run_id)
        self.stop = threading.Event()
        self.tally = Tally()
        self.workers: list[Child] = []
        self.forwarder: Child | None = None
        self.publisher = None
        self.sender: Sender | None = None
        self.live_lag: LiveLag | None = None
        self.stack = None  # localstack/stack.py, loaded by path
        self.kinesis = None
        self.started_localstack = False
        self.conn = None

    # -- the run -----------------------------------------------------------

    def run(self) -> int:
        began = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        restore = signals_as_interrupt()
        try:
            with console.logs_in_file(self.run_dir / "demo.log"):
                code = self._run_and_clean_up()
        finally:
            restore()
        console.say(f"demo finished in {time.monotonic() - began:.1f} s")
        return code

    def _run_and_clean_up(self) -> int:
        try:
            return self._run()
        except KeyboardInterrupt:
            console.say("interrupted: stopping the fleet and the workers")
            return 130
        finally:
            with interrupts_held():
                self._clean_up()

    def _run(self) -> int:
        console.header(self.options, self.stream, self.run_dir)
        endpoint = self._set_up()
        self._start_workers(endpoint)
        self._wait_for_leases()
        began = time.monotonic()
        self._send(endpoint, began)
        self._drain(began)
        # Only now: a message the broker acknowledged may still be on its
        # way to the forwarder, and stopping it earlier would lose it.
        self._stop_forwarder()
        exits = self._stop_workers()
        return self._reconcile(exits)

    def _set_up(self) -> str:
        if self.options.via == VIA_MQTT:
            check_broker(self.options.mqtt_host, self.options.mqtt_port)
        self._resolve_database()
        reset_schema(self.url, self.schema)
        console.item("PostgreSQL", f"{mask_url(self.url)}, schema "
                     f"{self.schema} (dropped and re-created: the counts "
                     f"below are this run's only)")

        self.stack = load_stack()
        up = self.stack.start_or_reuse(
            "cli", say=lambda line: console.item("LocalStack", line))
        self.started_localstack = up.started
        console.item("LocalStack", f"{up.endpoint} "
                     + ("(started; stopped at the end)" if up.started
                        else "(already running; left running)"))

        self.settings = replace(self.settings, kinesis_endpoint=up.endpoint)
        client = make_boto3_client(up.endpoint, self.settings.aws_region)
        existed = recreate_stream(self.stack, client, self.stream,
                                  STREAM_SHARDS)
        console.item("stream", f"{self.stream}, {STREAM_SHARDS} shards, "
                     + ("deleted and re-created empty" if existed
                        else "created"))
        self.kinesis = client

        migrate.upgrade(self.url, self.schema)
        console.item("tables", f"migrated schema {self.schema} to the "
                     "newest migration")
        self.conn = connect(self.url, self.schema, "ven-worker demo",
                            autocommit=True)
        return up.endpoint

    def _resolve_database(self) -> None:
        """DATABASE_URL, or the embedded server (started or reused)."""
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime folder that many
            # containers lack; the warning says nothing about the demo.
            warnings.filterwarnings("ignore", module="platformdirs")
            self.settings = ensure_database_url(self.settings)
        # Its exit-time lines would print after the demo's last line.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        self.url = self.settings.database_url

    def _start_workers(self, endpoint: str) -> None:
        for group in range(1, WORKER_GROUPS + 1):
            name, selector = f"demo-w{group}", f"{group}/{WORKER_GROUPS}"
            port = free_port()
            env = worker_env(self.settings, endpoint, name, selector, port)
            self.workers.append(start_worker(name, env, self.run_dir))
            console.item("worker", f"{name} --shards {selector} (pid "
                         f"{self.workers[-1].pid}), metrics "
                         f"http://127.0.0.1:{port}/metrics")
        console.item("logs", f"worker logs in {self.run_dir}")

    def _wait_for_leases(self) -> None:
        console.say(f"waiting for the workers to take the {STREAM_SHARDS} "
                    "shards ...")
        began = time.monotonic()
        pause = threading.Event()  # never set: a wait that Ctrl-C can cut
        while True:
            self._check_children("at start-up")
            held = owners(read_shards(self.conn, self.stream))
            if sum(held.values()) == STREAM_SHARDS:
                break
            if time.monotonic() - began > LEASES_DEADLINE_S:
                raise WorkerError(
                    f"the workers hold {sum(held.values())} of "
                    f"{STREAM_SHARDS} shards after {LEASES_DEADLINE_S:.0f} s; "
                    f"see their logs in {self.run_dir}")
            pause.wait(LEASES_POLL_S)
        shown = ", ".join(f"{w} holds {n}" for w, n in held.items())
        console.say(f"  {shown} ({time.monotonic() - began:.1f} s)")

    def _send(self, endpoint: str, began: float) -> None:
        options = self.options
        # The fleet's clock starts the run's simulated span before now, so
        # its last reading is about now: never past the worker's bound on
        # readings from the future.
        span_s = options.rounds * READING_INTERVAL_S
        start_ts = int(time.time()) - span_s
        fleet = Fleet(options.vens, start_ts, options.seed,
                      options.duplicate_percent / 100,
                      options.malformed_percent / 100)
        self.publisher = self._publisher(endpoint)
        self.sender = Sender(fleet, options.rounds, options.round_interval_s,
                             self.publisher, self.stop)
        console.say(f"sending {options.rounds} rounds over "
                    f"{options.duration_s:g} s (simulated "
                    f"{console.span_text(span_s)} from "
                    f"{console.utc_text(start_ts)}); Ctrl-C stops and "
                    f"cleans up")
        console.say(console.progress_header())
        self.live_lag = LiveLag(self.settings, self.stop)
        self.live_lag.start()
        self.sender.start()
        self._progress_until(lambda shards: self.sender.done.is_set(),
                             self.sender.done, began, deadline_s=None)
        if self.sender.error is not None:
            raise self.sender.error
        self._close_publisher()
        sent = self.tally.snapshot()
        console.say(f"sent {sent.total:,} records in "
                    f"{time.monotonic() - began:.1f} s; waiting for the "
                    "workers to account for all of them")

    def _publisher(self, endpoint: str):
        options = self.options
        if options.via != VIA_MQTT:
            return PutPublisher(self.kinesis, self.stream, self.tally.add,
                                self.stop)
        # A topic of this run only: other publishers on the same broker
        # would otherwise add records the reconciliation cannot know.
        topic = f"ven-demo/{self.run_id}/volttron/metering"
        self.forwarder = start_forwarder(
            SCRIPTS / "forwarder.py", self.stream, endpoint, topic,
            options.mqtt_host, options.mqtt_port,
            child_env(self.settings), self.run_dir)
        console.item("MQTT", f"publishing on {topic} at "
                     f"{options.mqtt_host}:{options.mqtt_port}; the "
                     f"forwarder (pid {self.forwarder.pid}) puts each "
                     f"message into the stream")
        return MqttPublisher(options.mqtt_host, options.mqtt_port, topic,
                             self.tally.add)

    def _drain(self, began: float) -> None:
        total = self.tally.snapshot().total
        if not self._progress_until(lambda shards: accounted(shards) >= total,
                                    threading.Event(), began,
                                    deadline_s=DRAIN_DEADLINE_S):
            done = accounted(read_shards(self.conn, self.stream))
            console.say(f"gave up waiting after {DRAIN_DEADLINE_S:.0f} s: "
                        f"{done:,} of {total:,} records accounted for")

    def _progress_until(self, finished: Callable[[list[ShardRow]], bool],
                        wake: threading.Event, began: float,
                        deadline_s: float | None) -> bool:
        """A progress line every interval (sooner when ``wake`` is set)
        until ``finished(shards)``; False when the deadline passes."""
        line = ProgressLine()
        started = time.monotonic()
        while True:
            wake.wait(PROGRESS_INTERVAL_S)
            self._check_children("during the run")
            shards = read_shards(self.conn, self.stream)
            text = line.format(time.monotonic() - began,
                               self.tally.snapshot(), shards,
                               self.live_lag.latest if self.live_lag else None)
            sender = self.sender
            if sender and not sender.done.is_set() and sender.behind_s > 1:
                text += f"  (sending {sender.behind_s:.0f} s behind)"
            console.say(text)
            if finished(shards):
                return True
            if deadline_s and time.monotonic() - started > deadline_s:
                return False

    def _check_children(self, when: str) -> None:
        """Fail at once when a child died: its shards would never drain."""
        for child in [*self.workers, self.forwarder]:
            code = child.exit_code() if child else None
            if code is not None:
                raise child.failure(f"exited with {code} {when}")

    # -- the end -----------------------------------------------------------

    def _stop_forwarder(self) -> None:
        if self.forwarder is not None:
            # It puts what it still holds before it exits.
            code = self.forwarder.stop()
            self.forwarder = None
            if code != 0:
                raise WorkerError(f"the forwarder exited with {code}; see "
                                  f"{self.run_dir / 'forwarder.log'}")

    def _stop_workers(self) -> dict[str, int]:
        exits = {}
        for child in self.workers:
            exits[child.name] = child.stop()
        self.workers = []
        shown = ", ".join(f"{name} exited {code}"
                          for name, code in exits.items())
        console.say(f"stopped the workers with SIGTERM: {shown}")
        return exits

    def _reconcile(self, exits: dict[str, int]) -> int:
        sent = self.tally.snapshot()
        stored = read_stored(self.conn, self.stream)
        result = reconcile(sent, stored)
        for name, code in exits.items():
            if code != 0:
                result.problems.append(f"worker {name} exited with {code}; "
                                       f"see {self.run_dir / name}.log")
        console.reconciliation(self.schema, self.stream, result)
        self._write_summary(sent, stored, result)
        return 0 if result.balanced else 1

    def _write_summary(self, sent, stored, result) -> None:
        summary = {
            "schema": self.schema, "stream": self.stream,
            "options": {k: str(v) for k, v in asdict(self.options).items()},
            "sent": sent.as_dict(),
            "stored": {"readings": stored.readings,
                       "load_samples": stored.samples,
                       "duplicates": stored.counted_duplicates,
                       "rejected": dict(sorted(stored.rejected.items()))},
            "balanced": result.balanced, "problems": result.problems,
        }
        path = self.run_dir / "summary.json"
        path.write_text(json.dumps(summary, indent=2) + "\n")
        console.say(f"summary written to {path}")

    def _clean_up(self) -> None:
        self.stop.set()
        if self.sender is not None:
            self.sender.join(PROGRESS_INTERVAL_S * 5)
        if self.live_lag is not None:
            self.live_lag.join(PROGRESS_INTERVAL_S * 5)
        for step in (self._close_publisher, self._stop_children,
                     self._close_conn, self._stop_localstack):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 -- clean up the rest
                console.say(f"clean-up step failed: {type(exc).__name__}: "
                            f"{exc}")

    def _close_publisher(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None

    def _stop_children(self) -> None:
        for child in [self.forwarder, *self.workers]:
            if child is not None and child.exit_code() is None:
                console.say(f"stopping {child.name} (pid {child.pid})")
                child.stop()
        self.forwarder, self.workers = None, []

    def _close_conn(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def _stop_localstack(self) -> None:
        if self.started_localstack:
            self.stack.stop(say=lambda line: console.item("LocalStack", line))
