"""The demo's child processes: worker processes (``python -m worker run``,
as two ECS services would run them) and the IoT-rule forwarder. Each writes
its log to a file in the run folder; none writes to the terminal."""

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from worker.errors import WorkerError

log = logging.getLogger(__name__)

# A worker commits its in-flight batch and releases its leases within its
# own 20 s shutdown grace; past this it is killed, and the demo fails.
STOP_GRACE_S = 30.0

# The forwarder subscribes within a second here; a slow machine gets time.
FORWARDER_READY_S = 30.0
READY_POLL_S = 0.1

# Lines of a failed child's log shown in the error.
LOG_TAIL_LINES = 5


@dataclass
class Child:
    """One child process and its log file."""

    name: str
    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, name: str, argv: list[str], env: dict,
              log_path: Path) -> "Child":
        with open(log_path, "wb") as out:
            process = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C in the terminal reaches only the
                # demo, which then stops children in order (senders first).
                start_new_session=True)
        log.info("started %s (pid %d), log %s", name, process.pid, log_path)
        return cls(name, process, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self) -> int | None:
        return self.process.poll()

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL after ``grace_s``; returns the exit code
        (negative: the signal that ended it)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) ignored SIGTERM for %.0f s; killing it",
                        self.name, self.pid, grace_s)
            self.process.kill()
            return self.process.wait()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        return self.log_text().strip().splitlines()[-lines:]

    def failure(self, what: str) -> WorkerError:
        tail = "\n".join("  " + line for line in self.log_tail())
        return WorkerError(f"{self.name} (pid {self.pid}) {what}; see "
                           f"{self.log_path}\n{tail}".rstrip())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now (a race with other programs is possible,
    and then the worker fails at start with a clear line)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_worker(name: str, env: dict, run_dir: Path) -> Child:
    return Child.start(name, [sys.executable, "-m", "worker", "run"], env,
                       run_dir / f"{name}.log")


def start_forwarder(script: Path, stream: str, endpoint: str, topic: str,
                    host: str, port: int, env: dict, run_dir: Path) -> Child:
    """The forwarder, subscribed and ready, with a ``${venId}`` key."""
    argv = [sys.executable, str(script), "--stream", stream,
            "--endpoint", endpoint, "--topic", topic, "--mqtt-host", host,
            "--mqtt-port", str(port), "--partition-key", "${venId}"]
    child = Child.start("forwarder", argv, env, run_dir / "forwarder.log")
    pause = threading.Event()  # never set: a wait that Ctrl-C can cut
    deadline = time.monotonic() + FORWARDER_READY_S
    # Its ready line is the only signal it gives that it has subscribed.
    while "forwarding " not in child.log_text():
        if child.exit_code() is not None:
            raise child.failure(f"exited with {child.exit_code()} at start")
        if time.monotonic() > deadline:
            child.stop()
            raise child.failure(f"not subscribed after {FORWARDER_READY_S:.0f}"
                                " s")
        pause.wait(READY_POLL_S)
    return child
