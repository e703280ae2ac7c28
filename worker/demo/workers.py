"""The environment of the demo's child processes: the settings the demo was
given (so ``ven-worker demo --lease-duration-s 5`` reaches the workers),
then what the demo decides for each worker."""

import os

from worker.config import OPTIONS, RENEWALS_PER_LEASE


def child_env(settings) -> dict[str, str]:
    """This process's environment plus every setting that differs from its
    default, as the environment variable a worker reads."""
    env = dict(os.environ)
    for option in OPTIONS:
        value = getattr(settings, option.name)
        if value is None or value == option.default:
            continue
        if option.name == "renew_interval_s" and (
                value == settings.lease_duration_s / RENEWALS_PER_LEASE):
            continue  # derived from the lease duration, not given
        env[option.env[0]] = option.show(value)
    env["AWS_REGION"] = settings.aws_region
    return env


def worker_env(settings, endpoint: str, worker_id: str, shards: str,
               metrics_port: int) -> dict[str, str]:
    env = child_env(settings)
    env.update(
        DATABASE_URL=settings.database_url,
        PG_SCHEMA=settings.pg_schema,
        KINESIS_ENDPOINT=endpoint,
        STREAM_NAME=settings.stream_name,
        SHARDS=shards,
        WORKER_ID=worker_id,
        # Each worker its own port, on loopback only: this is a demo.
        METRICS_PORT=str(metrics_port),
        METRICS_HOST="127.0.0.1",
        # The logs go to files people read, not to a log pipeline.
        LOG_FORMAT="text",
    )
    return env
