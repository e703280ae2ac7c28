#!/usr/bin/env python3
"""Bring a local Kinesis (LocalStack) up and down, and create streams in it.

    python localstack/stack.py up | down | status
    python localstack/stack.py create-stream --name N --shards K

The demo and the test fixtures load this file by path and call ensure_up(),
stop(), create_stream() and wait_active(). This folder is deliberately not a
package: one named ``localstack`` would shadow LocalStack itself.

Standard library plus boto3, and boto3 only where Kinesis is called, so
``up`` and ``down`` run from any Python 3.11+.

Where LocalStack comes from, first match wins:
1. LOCALSTACK_ENDPOINT, when set (it must answer health: a wrong setting is
   an error, not a reason to start another LocalStack on another port);
2. whatever already answers health on 127.0.0.1:4566;
3. the official image, where a Docker engine works;
4. LocalStack's Python runtime on this host, installed into its own virtual
   environment under the user's cache folder on first use.
Only the last two start anything, and ``down`` stops only what this file
started, by the id it recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

LOCALSTACK_VERSION = "2026.3.0"

# What pip resolves for LocalStack on its own does not start. These pins do,
# with Kinesis working: newer cbor2 lacks the private module LocalStack
# imports, newer pyopenssl lacks X509.add_extensions, and the runtime needs
# service_identity without declaring it. pip warns that joserfc wants a newer
# cryptography; Kinesis never loads joserfc.
RECIPE = (
    f"localstack-core[runtime]=={LOCALSTACK_VERSION}",
    "cbor2==5.6.5",
    "cryptography==43.0.3",
    "pyopenssl==24.2.1",
    "service_identity==24.2.0",
)

# localstack-core 2026.x uses PEP 695 generics, a SyntaxError before 3.12.
MIN_PYTHON = (3, 12)

# Images from 2026.3 on refuse to start without LOCALSTACK_AUTH_TOKEN; the
# last release before that change still runs unauthenticated. A token in the
# environment is passed through, and LOCALSTACK_IMAGE overrides the choice.
DEFAULT_IMAGE = "localstack/localstack:4.14.0"

HOST = "127.0.0.1"
PORT = 4566
DEFAULT_ENDPOINT = f"http://{HOST}:{PORT}"
REGION = "us-east-1"

# Becoming healthy takes about 2 s here; a slow CI machine or a first image
# pull takes far longer, and a real failure shows up as the process exiting,
# which ends the wait at once.
HEALTH_DEADLINE_S = 180
HEALTH_POLL_S = 0.3

# The first Kinesis call makes LocalStack install kinesis-mock from npm and
# start it (seconds on a good network, a minute on a poor one).
WARM_UP_READ_TIMEOUT_S = 180

# LocalStack shuts down within a few seconds of SIGTERM; past this it gets
# SIGKILL so ``down`` always ends.
STOP_GRACE_S = 20

# Streams take half a second to turn ACTIVE (kinesis-mock's default latency),
# five on the very first CreateStream; real AWS takes up to a minute.
ACTIVE_DEADLINE_S = 120
ACTIVE_POLL_S = 0.25

# LocalStack's health states that mean "Kinesis will answer".
READY_STATES = frozenset({"available", "running"})

Say = Callable[[str], None]


class StackError(Exception):
    """Anything that stops LocalStack or a stream from being ready. The
    message is one line meant for a person; the CLI prints it and exits 1."""


def _say_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- where things live ---------------------------------------------------


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ven-worker"


def venv_dir() -> Path:
    override = os.environ.get("LOCALSTACK_VENV")
    if override:
        return Path(override).expanduser()
    return cache_root() / f"localstack-{LOCALSTACK_VERSION}"


def run_dir() -> Path:
    """Pid file, log, claims and lock of the LocalStack this file runs."""
    path = cache_root() / "localstack-run"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked():
    """Serialise bring-up and tear-down across processes: two test sessions
    starting at once must share one LocalStack, not race for port 4566."""
    with open(run_dir() / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- health --------------------------------------------------------------


def is_healthy(endpoint: str) -> bool:
    """True when ``endpoint`` is a LocalStack whose Kinesis can answer."""
    url = endpoint.rstrip("/") + "/_localstack/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            body = json.load(answer)
    except (OSError, ValueError):
        return False
    return body.get("services", {}).get("kinesis") in READY_STATES


def _wait_healthy(endpoint: str, is_running: Callable[[], bool], log: str):
    cancel = threading.Event()
    deadline = time.monotonic() + HEALTH_DEADLINE_S
    while time.monotonic() < deadline:
        if is_healthy(endpoint):
            return
        if not is_running():
            raise StackError(f"LocalStack exited during start-up; see {log}")
        cancel.wait(HEALTH_POLL_S)
    raise StackError(
        f"LocalStack not healthy after {HEALTH_DEADLINE_S} s; see {log}"
    )


def _warm_up(endpoint: str) -> None:
    """One Kinesis call, so kinesis-mock is installed and running before the
    first caller that has a deadline of its own."""
    import botocore.config
    import botocore.exceptions

    config = botocore.config.Config(
        read_timeout=WARM_UP_READ_TIMEOUT_S, retries={"total_max_attempts": 1}
    )
    try:
        make_client(endpoint, config=config).list_streams(Limit=1)
    except (botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError) as exc:
        raise StackError(
            f"LocalStack at {endpoint} is up but Kinesis fails: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


# --- the pid file --------------------------------------------------------
#
# One JSON object: {"kind": "host", "pid": N} or {"kind": "docker",
# "container": ID}, plus "origin" ("cli" or "session"): a LocalStack that a
# test session started is stopped by the last session using it, one started
# by ``up`` stays until ``down``.


def _pid_path() -> Path:
    return run_dir() / "localstack.pid"


def _log_path() -> Path:
    return run_dir() / "localstack.log"


def _read_pidfile() -> dict | None:
    try:
        return json.loads(_pid_path().read_text())
    except (OSError, ValueError):
        return None


def _write_pidfile(record: dict) -> None:
    tmp = _pid_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(_pid_path())


# Popen objects of LocalStacks started by this process, kept so they are
# reaped (a zombie would still look alive to kill(pid, 0)).
_children: dict[int, subprocess.Popen] = {}


def _pid_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_localstack(pid: int) -> bool:
    """Guards against a recycled pid: the recorded process must still be a
    LocalStack runtime before it is signalled."""
    shown = subprocess.run(
        # -ww: ps cuts lines at 80 columns when not writing to a terminal,
        # and the interpreter's path alone can be longer than that.
        ["ps", "-ww", "-o", "command=", "-p", str(pid)],
        capture_output=True, text=True, check=False,
    )
    return "localstack.runtime.main" in shown.stdout


def _child_pids(pid: int) -> list[int]:
    shown = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True,
        check=False,
    )
    pairs = (line.split() for line in shown.stdout.splitlines())
    return [int(p) for p, parent in pairs if int(parent) == pid]


def _recorded_running(record: dict | None) -> bool:
    if not record:
        return False
    if record.get("kind") == "docker":
        return _container_running(record["container"])
    pid = int(record.get("pid", 0))
    return pid > 0 and _pid_alive(pid) and _is_localstack(pid)


# --- a Python for the host runtime ---------------------------------------

_PROBE = "import sys; print(sys.version_info >= (3, 12), sys.executable)"


def _probe_python(command: str) -> str | None:
    """The real interpreter path behind ``command`` when it is new enough
    (a pyenv shim resolves to the interpreter it runs)."""
    try:
        done = subprocess.run(
            [command, "-c", _PROBE], capture_output=True, text=True,
            timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    new_enough, _, executable = done.stdout.strip().partition(" ")
    if done.returncode != 0 or new_enough != "True":
        return None
    return executable


def _pyenv_pythons() -> list[str]:
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        shown = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=False
        )
        root = shown.stdout.strip()
    if not root:
        root = str(Path.home() / ".pyenv")

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    found = glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3"))
    return sorted(found, key=version, reverse=True)


def find_python() -> str:
    """A Python >= 3.12 for LocalStack's own environment, or StackError."""
    explicit = os.environ.get("LOCALSTACK_PYTHON")
    if explicit:
        found = _probe_python(explicit)
        if found:
            return found
        raise StackError(f"LOCALSTACK_PYTHON={explicit} is not Python 3.12+")

    if sys.version_info >= MIN_PYTHON:
        return sys.executable
    names = ("python3.14", "python3.13", "python3.12", "python3")
    candidates = [c for c in map(shutil.which, names) if c]
    for command in candidates + _pyenv_pythons():
        found = _probe_python(command)
        if found:
            return found
    raise StackError(
        "LocalStack needs Python 3.12 or newer and none was found: install "
        "python3.12 (OS packages, pyenv or python.org), set LOCALSTACK_PYTHON, "
        "or run LocalStack yourself and set LOCALSTACK_ENDPOINT"
    )


# --- LocalStack's own virtual environment --------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_installed(say: Say = _say_stderr) -> Path:
    """LocalStack's interpreter, installing the pinned recipe when missing.

    A marker written after pip succeeds tells a finished install from one
    that was interrupted; a missing or different marker means reinstall.
    """
    venv = venv_dir()
    marker = venv / ".ven-worker-recipe"
    wanted = "\n".join(RECIPE)
    if marker.exists() and marker.read_text() == wanted:
        return _venv_python(venv)

    python = find_python()
    say(f"installing LocalStack {LOCALSTACK_VERSION} into {venv} ({python})")
    started = time.monotonic()
    log = run_dir() / "install.log"
    with open(log, "w") as out:
        steps = (
            [python, "-m", "venv", "--clear", str(venv)],
            [str(_venv_python(venv)), "-m", "pip", "install",
             "--disable-pip-version-check", *RECIPE],
        )
        for step in steps:
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                raise StackError(f"installing LocalStack failed; see {log}")

    marker.write_text(wanted)
    say(f"installed in {time.monotonic() - started:.1f} s")
    return _venv_python(venv)


# --- starting ------------------------------------------------------------


def _host_env(venv: Path) -> dict[str, str]:
    # The caller's PYTHONPATH belongs to another interpreter (often the
    # project's 3.11 venv) and would break LocalStack's imports.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        GATEWAY_LISTEN=f"{HOST}:{PORT}",
        SERVICES="kinesis",
        PERSISTENCE="0",
        # kinesis-mock saves its streams every few seconds and reloads them
        # on start unless told not to; tests want an empty emulator.
        KINESIS_PERSISTENCE="0",
        # Inside a container (CI runners often are) LocalStack would write
        # to /var/lib/localstack and /tmp/localstack, shared by everyone on
        # the machine; as a host process it keeps to FILESYSTEM_ROOT below.
        OVERRIDE_IN_DOCKER="0",
        # Keep everything LocalStack writes (kinesis-mock from npm, its
        # temporary state) beside its interpreter, not in site-packages,
        # so one folder holds the whole install.
        LOCALSTACK_VOLUME_DIR=str(venv / "volume"),
        FILESYSTEM_ROOT=str(venv / "filesystem"),
        # Usage events go to an outside service these machines cannot reach.
        DISABLE_EVENTS="1",
    )
    return env


def _start_host(python: Path, say: Say) -> dict:
    venv = python.parent.parent
    log = _log_path()
    say(f"starting LocalStack (host runtime); log {log}")
    with open(log, "w") as out:
        child = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_host_env(venv), cwd=run_dir(),
            # A session of its own: a Ctrl-C meant for the caller (``up`` or
            # a test run) does not reach it; it ends only through ``down``.
            start_new_session=True,
        )
    _children[child.pid] = child
    return {"kind": "host", "pid": child.pid}


def docker_works() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        done = subprocess.run(
            ["docker", "info"], capture_output=True, timeout=15, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _container_running(container: str) -> bool:
    done = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", container],
        capture_output=True, text=True, check=False,
    )
    return done.stdout.strip() == "true"


def _start_docker(say: Say) -> dict:
    image = os.environ.get("LOCALSTACK_IMAGE", DEFAULT_IMAGE)
    say(f"starting LocalStack (docker image {image})")
    command = [
        "docker", "run", "-d", "--rm", "-p", f"{HOST}:{PORT}:4566",
        "-e", "SERVICES=kinesis", "-e", "PERSISTENCE=0",
    ]
    if os.environ.get("LOCALSTACK_AUTH_TOKEN"):
        command += ["-e", "LOCALSTACK_AUTH_TOKEN"]
    done = subprocess.run(
        command + [image], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StackError(f"docker run {image} failed: {last}")
    return {"kind": "docker", "container": done.stdout.strip()}


def _runtime() -> str:
    wanted = os.environ.get("LOCALSTACK_RUNTIME", "auto")
    if wanted not in ("auto", "host", "docker"):
        raise StackError(
            f"LOCALSTACK_RUNTIME={wanted}: expected auto, host or docker"
        )
    if wanted == "auto":
        return "docker" if docker_works() else "host"
    return wanted


@dataclass(frozen=True)
class Stack:
    endpoint: str
    started: bool  # True when this call started LocalStack


def _start_and_wait(origin: str, say: Say) -> dict:
    if _runtime() == "docker":
        began = time.monotonic()
        record = _start_docker(say)
    else:
        python = ensure_installed(say)
        began = time.monotonic()
        record = _start_host(python, say)
    _write_pidfile({**record, "origin": origin})
    try:
        _wait_healthy(
            DEFAULT_ENDPOINT, lambda: _recorded_running(record),
            str(_log_path()),
        )
    except StackError:
        _stop_locked(say)  # a half-started LocalStack helps nobody
        raise
    say(f"healthy after {time.monotonic() - began:.1f} s")
    return record


def start_or_reuse(origin: str = "cli", say: Say = _say_stderr) -> Stack:
    """A healthy LocalStack with Kinesis warmed up; starts one if needed.

    ``origin`` "session" is for test sessions: the calling process claims
    the LocalStack (in the same locked step, so no other session can stop
    it in between) and must call release_and_maybe_stop() at its end. What
    a session starts is stopped by the last session using it; what "cli"
    starts stays until ``down``.
    """
    explicit = os.environ.get("LOCALSTACK_ENDPOINT")
    if explicit:
        if not is_healthy(explicit):
            raise StackError(
                f"LOCALSTACK_ENDPOINT={explicit} does not answer "
                "/_localstack/health with Kinesis available"
            )
        _warm_up(explicit)
        return Stack(explicit, started=False)

    with _locked():
        started = False
        record = _read_pidfile()
        if record and not _recorded_running(record):
            _pid_path().unlink()  # what it names is gone
            record = None
        if is_healthy(DEFAULT_ENDPOINT):
            pass  # ours or anyone's: reused as it is
        elif record:
            say("waiting for the LocalStack started earlier to turn healthy")
            _wait_healthy(
                DEFAULT_ENDPOINT, lambda: _recorded_running(record),
                str(_log_path()),
            )
        else:
            record = _start_and_wait(origin, say)
            started = True
        if origin == "session":
            (_claims_dir() / str(os.getpid())).touch()
        began = time.monotonic()
        _warm_up(DEFAULT_ENDPOINT)
        if started:
            say(f"Kinesis ready after {time.monotonic() - began:.1f} s more")
    return Stack(DEFAULT_ENDPOINT, started=started)


def ensure_up(say: Say = _say_stderr) -> str:
    """The endpoint of a healthy LocalStack, starting one if none answers."""
    return start_or_reuse("cli", say).endpoint


# --- stopping ------------------------------------------------------------


def _stop_host(pid: int, say: Say) -> None:
    if not (_pid_alive(pid) and _is_localstack(pid)):
        say(f"LocalStack pid {pid} is no longer running")
        return
    say(f"stopping LocalStack pid {pid}")
    # kinesis-mock runs in a session of its own, so it is not in LocalStack's
    # process group; it is found by its parent pid before LocalStack exits.
    children = _child_pids(pid)
    os.kill(pid, signal.SIGTERM)
    cancel = threading.Event()
    deadline = time.monotonic() + STOP_GRACE_S
    while _pid_alive(pid) and time.monotonic() < deadline:
        cancel.wait(0.2)
    # LocalStack stops kinesis-mock itself on SIGTERM; only when it hung do
    # both get SIGKILL (after a clean exit the child pids may be reused).
    if _pid_alive(pid):
        say(f"LocalStack pid {pid} ignored SIGTERM; killing it")
        for leftover in [pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
    _children.pop(pid, None)


def _stop_locked(say: Say) -> bool:
    record = _read_pidfile()
    if not record:
        say("nothing started by stack.py; any other LocalStack is left alone")
        return False
    if record.get("kind") == "docker":
        say(f"stopping container {record['container'][:12]}")
        subprocess.run(
            ["docker", "stop", record["container"]],
            capture_output=True, check=False,
        )
    else:
        _stop_host(int(record["pid"]), say)
    _pid_path().unlink(missing_ok=True)
    return True


def stop(say: Say = _say_stderr) -> bool:
    """Stop the LocalStack this file started, by its recorded id. Returns
    False when there was none."""
    with _locked():
        return _stop_locked(say)


# --- sharing one LocalStack between test sessions ------------------------


def _claims_dir() -> Path:
    path = run_dir() / "claims"
    path.mkdir(exist_ok=True)
    return path


def release_and_maybe_stop(say: Say = _say_stderr) -> bool:
    """Drop this process's claim; stop LocalStack when a test session
    started it and no live process still claims it. Returns True if it
    stopped. A LocalStack started by ``up`` or by someone else stays."""
    with _locked():
        (_claims_dir() / str(os.getpid())).unlink(missing_ok=True)
        others = [p for p in _claims_dir().iterdir() if p.name.isdigit()]
        live = [p for p in others if _pid_alive(int(p.name))]
        for dead in set(others) - set(live):
            dead.unlink(missing_ok=True)
        record = _read_pidfile()
        if live or not record or record.get("origin") != "session":
            return False
        return _stop_locked(say)


# --- streams -------------------------------------------------------------


def make_client(endpoint: str = DEFAULT_ENDPOINT, config=None):
    """A Kinesis client for LocalStack (which accepts any credentials)."""
    import boto3

    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_DEFAULT_REGION", REGION),
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


@dataclass(frozen=True)
class StreamState:
    name: str
    open_shards: int
    created: bool  # False when the stream already existed


def wait_active(client, name: str, deadline_s: float = ACTIVE_DEADLINE_S,
                cancel: threading.Event | None = None) -> int:
    """Wait until the stream is ACTIVE; returns its open shard count."""
    cancel = cancel or threading.Event()
    deadline = time.monotonic() + deadline_s
    while True:
        summary = client.describe_stream_summary(StreamName=name)
        summary = summary["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return summary["OpenShardCount"]
        if time.monotonic() > deadline:
            raise StackError(
                f"stream {name} still {summary['StreamStatus']} after "
                f"{deadline_s:.0f} s"
            )
        if cancel.wait(ACTIVE_POLL_S):
            raise StackError(f"gave up waiting for stream {name}")


def create_stream(client, name: str, shards: int) -> StreamState:
    """Create the stream unless it exists, then wait until it is ACTIVE.
    An existing stream is left as it is, whatever its shard count."""
    created = True
    try:
        client.create_stream(StreamName=name, ShardCount=shards)
    except client.exceptions.ResourceInUseException:
        created = False
    return StreamState(name, wait_active(client, name), created)


def delete_stream(client, name: str) -> None:
    """Delete the stream if it exists (no wait: deletion is asynchronous)."""
    with contextlib.suppress(client.exceptions.ResourceNotFoundException):
        client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


# --- the command line ----------------------------------------------------


def _cmd_up(args) -> int:
    print(start_or_reuse("cli").endpoint)
    return 0


def _cmd_down(args) -> int:
    stop()
    return 0


def _cmd_status(args) -> int:
    endpoint = os.environ.get("LOCALSTACK_ENDPOINT", DEFAULT_ENDPOINT)
    healthy = is_healthy(endpoint)
    print(f"endpoint  {endpoint} ({'healthy' if healthy else 'not answering'})")
    record = _read_pidfile()
    if record:
        shown = record.get("pid") or record.get("container", "")[:12]
        print(f"started   {record.get('kind')} {shown} by {record.get('origin')}")
    installed = (venv_dir() / ".ven-worker-recipe").exists()
    print(f"venv      {venv_dir()} ({'installed' if installed else 'absent'})")
    return 0 if healthy else 1


def _cmd_create_stream(args) -> int:
    import botocore.config
    import botocore.exceptions

    # Fail fast on a dead endpoint: one retry, short connect timeout.
    config = botocore.config.Config(
        connect_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"}
    )
    client = make_client(args.endpoint, config=config)
    try:
        state = create_stream(client, args.name, args.shards)
    except (botocore.exceptions.ConnectionError,
            botocore.exceptions.HTTPClientError) as exc:
        raise StackError(
            f"cannot reach Kinesis at {args.endpoint} ({type(exc).__name__})"
        ) from exc
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        raise StackError(f"Kinesis refused {args.name}: {code}") from exc

    if state.created:
        print(f"created {state.name}: {state.open_shards} shards, ACTIVE")
    elif state.open_shards == args.shards:
        print(f"{state.name} exists: {state.open_shards} shards, ACTIVE")
    else:
        print(
            f"{state.name} exists with {state.open_shards} open shards "
            f"(asked for {args.shards}); left as it is"
        )
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stack.py", description="Local Kinesis for development and tests"
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show tracebacks on failure"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up", help="start LocalStack or reuse a healthy one; print endpoint"
    ).set_defaults(func=_cmd_up)
    commands.add_parser(
        "down", help="stop the LocalStack this script started"
    ).set_defaults(func=_cmd_down)
    commands.add_parser(
        "status", help="show endpoint health and what was started"
    ).set_defaults(func=_cmd_status)
    create = commands.add_parser(
        "create-stream", help="create a stream if missing; wait for ACTIVE"
    )
    create.add_argument("--name", required=True)
    create.add_argument("--shards", type=_positive, default=1)
    create.add_argument(
        "--endpoint",
        default=os.environ.get("LOCALSTACK_ENDPOINT", DEFAULT_ENDPOINT),
    )
    create.set_defaults(func=_cmd_create_stream)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StackError as exc:
        if args.traceback:
            raise
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
