"""localstack/stack.py's bookkeeping, without LocalStack: which process it
may signal, and when a test session stops what a session started.

Stand-in "LocalStack" processes are sleepers whose command line carries the
runtime's module name behind a long path, as a real one does.
"""

import json
import subprocess
import sys

import pytest
from localstack_scripts import load_script

stack = load_script("stack")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Pid file, claims and lock in a folder of the test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


@pytest.fixture
def fake_localstack():
    """A process that looks like LocalStack's runtime to ``ps``."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)",
         "/a/path/longer/than/eighty/columns/" + "x" * 60,
         "-m", "localstack.runtime.main"],
        start_new_session=True,
    )
    stack._children[child.pid] = child  # reaped by the module, as its own
    yield child
    if child.poll() is None:
        child.kill()
        child.wait()


def _record(process, origin: str) -> None:
    path = stack.run_dir() / "localstack.pid"
    path.write_text(json.dumps(
        {"kind": "host", "pid": process.pid, "origin": origin}
    ))


def test_is_localstack_sees_past_eighty_columns(fake_localstack):
    assert stack._is_localstack(fake_localstack.pid)


def test_is_localstack_refuses_other_process():
    with subprocess.Popen([sys.executable, "-c", "import time; "
                           "time.sleep(300)"]) as other:
        try:
            assert not stack._is_localstack(other.pid)
        finally:
            other.kill()


def test_release_stops_session_localstack_when_last(fake_localstack):
    _record(fake_localstack, "session")
    (stack.run_dir() / "claims").mkdir()
    (stack.run_dir() / "claims" / "999999999").touch()  # a dead session

    stopped = stack.release_and_maybe_stop(say=lambda line: None)

    assert stopped
    assert fake_localstack.wait(timeout=30) is not None
    assert not (stack.run_dir() / "localstack.pid").exists()
    assert list((stack.run_dir() / "claims").iterdir()) == []


def test_release_leaves_localstack_another_session_claims(fake_localstack):
    _record(fake_localstack, "session")
    (stack.run_dir() / "claims").mkdir()
    (stack.run_dir() / "claims" / str(fake_localstack.pid)).touch()

    stopped = stack.release_and_maybe_stop(say=lambda line: None)

    assert not stopped
    assert fake_localstack.poll() is None
    assert (stack.run_dir() / "localstack.pid").exists()


def test_release_leaves_localstack_started_by_cli(fake_localstack):
    _record(fake_localstack, "cli")

    stopped = stack.release_and_maybe_stop(say=lambda line: None)

    assert not stopped
    assert fake_localstack.poll() is None


def test_stop_without_pid_file_touches_nothing():
    lines = []

    assert stack.stop(say=lines.append) is False
    assert lines == ["nothing started by stack.py; any other LocalStack is "
                     "left alone"]


def test_find_python_rejects_old_explicit_interpreter(monkeypatch):
    monkeypatch.setenv("LOCALSTACK_PYTHON", sys.executable)
    if sys.version_info >= (3, 12):
        assert stack.find_python() == sys.executable
    else:
        with pytest.raises(stack.StackError, match="is not Python 3.12"):
            stack.find_python()
