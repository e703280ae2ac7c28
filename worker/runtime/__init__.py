"""The worker process: ``run(settings)`` checks the outside world, wires the
pieces together, and runs until SIGTERM or SIGINT."""

import logging
import signal
import threading

import psycopg

from worker.db.connect import connect, lease_row_session, mask_url
from worker.errors import ConfigError, TransientError
from worker.kinesis.client import KinesisClient, make_boto3_client
from worker.kinesis.selector import parse_selector
from worker.leases import LeaseCoordinator, LeaseSettings
from worker.observe import Observability
from worker.records.policy import policy_from
from worker.runtime.observer import RuntimeObserver
from worker.runtime.worker import Worker
from worker.sink.postgres import PostgresSink, SinkSettings

log = logging.getLogger(__name__)


def check_database(url: str, schema: str) -> None:
    """Reachable, and migrated: one clear line otherwise."""
    with connect(url, schema) as conn:
        found = conn.execute(
            "SELECT to_regclass('shard_leases') IS NOT NULL"
        ).fetchone()[0]
    if not found:
        raise ConfigError(
            f"the worker's tables are missing in schema {schema!r} of "
            f"{mask_url(url)}: run `ven-worker migrate` first"
        )


def build_worker(settings, stop: threading.Event, observe: Observability,
                 kinesis: KinesisClient | None = None) -> Worker:
    """Everything a worker needs, from settings. ``kinesis`` may be given
    (tests pass one with injected faults)."""
    url, schema = settings.database_url, settings.pg_schema
    app_name = f"ven-worker {settings.worker_id}"
    selector = parse_selector(settings.shards)
    check_database(url, schema)
    if kinesis is None:
        kinesis = KinesisClient(
            make_boto3_client(settings.kinesis_endpoint, settings.aws_region),
            stop=stop, on_retry=observe.metrics.retried)
    kinesis.check_stream(settings.stream_name, settings.kinesis_endpoint)

    sink_settings = SinkSettings(
        retention_days=settings.retention_days,
        partitions_ahead_days=settings.partitions_ahead_days,
        lease_duration_s=settings.lease_duration_s)
    # A batch that hits one of these limits ends with an error and is
    # tried again.
    batch_session = lease_row_session(settings.lease_duration_s)

    def sink_factory() -> PostgresSink:
        try:
            conn = connect(url, schema, app_name, session=batch_session)
        except ConfigError as exc:
            # At start-up this was a configuration problem; now it is an
            # outage, and the batch is retried until the database is back.
            raise TransientError(str(exc)) from exc
        return PostgresSink(conn, sink_settings)

    def partition_upkeep(today) -> None:
        sink = sink_factory()
        try:
            sink.maintain_partitions(today)
        finally:
            sink.close()

    policy = policy_from(settings)
    observer = RuntimeObserver(observe)
    worker = Worker(stream=settings.stream_name, kinesis=kinesis,
                    leases=None, sink_factory=sink_factory,
                    partition_upkeep=partition_upkeep, decode_policy=policy,
                    settings=settings, observer=observer, stop=stop)
    coordinator = LeaseCoordinator(
        lambda: connect(url, schema, app_name, autocommit=True),
        settings.stream_name, settings.worker_id, selector,
        LeaseSettings(lease_duration_s=settings.lease_duration_s,
                      renew_interval_s=settings.renew_interval_s),
        on_acquired=worker.lease_acquired, on_lost=worker.lease_lost)
    worker.attach_leases(coordinator)
    return worker


def install_signal_handlers(worker: Worker) -> None:
    def handle(signum, _frame) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        worker.stop.set()
        worker.wake()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run(settings) -> int:
    stop = threading.Event()
    observe = Observability.start(settings, settings.worker_id)
    try:
        worker = build_worker(settings, stop, observe)
        install_signal_handlers(worker)
        return worker.run()
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"PostgreSQL at {mask_url(settings.database_url)} failed at "
            f"start-up: {first}") from exc
    finally:
        observe.close()
