"""Workers under test: subprocesses (``python -m worker run``) and workers
running in the test process behind a wrapped boto3 client.

Every worker may have its own PgProxy, so the test can cut its database or
terminate exactly its server connections.
"""

import signal
import threading

import psycopg

from tests.e2e.worker_harness import WorkerProcess
from tests.faults.pg_proxy import PgProxy
from worker.config import load_settings
from worker.kinesis.client import KinesisClient, make_boto3_client
from worker.observe import Observability
from worker.runtime import build_worker

# Shutdown commits in-flight batches within the worker's own 20 s grace;
# this only bounds a hung join.
STOP_JOIN_S = 60

# Kinesis backoff for in-process workers: the test exercises the retry
# paths, not the waiting, so the waits are shrunk (as the seam allows).
TEST_BACKOFF_INITIAL_S = 0.02
TEST_BACKOFF_MAX_S = 0.5


class SubprocessWorker:
    """A worker process, and the proxy its database traffic goes through
    (None when it connects directly)."""

    def __init__(self, name: str, env: dict, log_dir, proxy: PgProxy | None):
        self.name = name
        self.proxy = proxy
        if proxy is not None:
            env = {**env, "DATABASE_URL": proxy.url}
        self.process = WorkerProcess(name, env, log_dir)
        self.pid = self.process.process.pid

    def alive(self) -> bool:
        return self.process.process.poll() is None

    def signal(self, signum: int) -> None:
        self.process.signal(signum)

    def kill(self) -> int:
        self.signal(signal.SIGKILL)
        return self.process.wait()

    def terminate(self) -> int:
        """SIGTERM and the exit code."""
        self.signal(signal.SIGTERM)
        return self.process.wait()

    def log(self) -> str:
        return self.process.log()

    def close(self) -> None:
        self.process.stop()
        if self.proxy is not None:
            self.proxy.close()


class InProcessWorker:
    """A worker in this process whose boto3 client is ``wrap(real)``."""

    def __init__(self, name: str, env: dict, wrap, proxy: PgProxy | None):
        self.name = name
        self.proxy = proxy
        if proxy is not None:
            env = {**env, "DATABASE_URL": proxy.url}
        settings = load_settings(environ={**env, "WORKER_ID": name})
        self.stop_event = threading.Event()
        self._observe = Observability.start(settings, name)
        self.client = wrap(make_boto3_client(settings.kinesis_endpoint,
                                             settings.aws_region))
        kinesis = KinesisClient(
            self.client, stop=self.stop_event,
            on_retry=self._observe.metrics.retried,
            backoff_initial_s=TEST_BACKOFF_INITIAL_S,
            backoff_max_s=TEST_BACKOFF_MAX_S)
        self.worker = build_worker(settings, self.stop_event, self._observe,
                                   kinesis=kinesis)
        self.result: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name,
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self.worker.run()
        except BaseException as exc:  # reported by terminate()
            self.error = exc

    def alive(self) -> bool:
        return self._thread.is_alive()

    def terminate(self) -> int | None:
        """Stop as SIGTERM would; the run's return value (0 when clean)."""
        self.stop_event.set()
        self.worker.wake()
        self._thread.join(STOP_JOIN_S)
        self._observe.close()
        if self.error is not None:
            raise self.error
        return None if self._thread.is_alive() else self.result

    def close(self) -> None:
        if self.alive():
            self.terminate()
        if self.proxy is not None:
            self.proxy.close()


def terminate_backends(pg_url: str, ports: list[int]) -> int:
    """pg_terminate_backend for the sessions coming from ``ports`` (a
    proxy's upstream side); returns how many were ended."""
    if not ports:
        return 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE client_addr = '127.0.0.1' AND client_port = ANY(%s) "
            "AND pid <> pg_backend_pid()", (ports,)).fetchall()
    return sum(1 for (ended,) in rows if ended)


def backend_states(pg_url: str, ports: list[int]) -> list[tuple]:
    """(state, wait_event, query) of the sessions coming from ``ports``."""
    if not ports:
        return []
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT state, wait_event, query FROM pg_stat_activity "
            "WHERE client_addr = '127.0.0.1' AND client_port = ANY(%s)",
            (ports,)).fetchall()
