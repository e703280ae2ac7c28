"""Start-up against a broken outside world: one clear line on stderr, no
stack trace, and a non-zero exit."""

import os
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from worker.errors import ConfigError
from worker.kinesis.client import classify

from tests.e2e.worker_harness import worker_env


def _run_worker(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", "run"],
                          env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120)


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("ven-worker: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_missing_stream_is_one_line(pg_url, migrated_schema,
                                    localstack_endpoint):
    env = worker_env(pg_url, migrated_schema, localstack_endpoint,
                     "no-such-stream-4f2a")
    line = _error_line(_run_worker(env))
    assert "no-such-stream-4f2a" in line and "does not exist" in line


def test_unreachable_kinesis_endpoint_is_one_line(pg_url, migrated_schema):
    env = worker_env(pg_url, migrated_schema, "http://127.0.0.1:9", "s")
    line = _error_line(_run_worker(env))
    assert "cannot reach Kinesis at http://127.0.0.1:9" in line


def test_unreachable_database_is_one_line(localstack_endpoint):
    env = worker_env("postgresql://ven:secret@127.0.0.1:9/x", "public",
                     localstack_endpoint, "s")
    result = _run_worker(env)
    line = _error_line(result)
    assert "cannot connect to PostgreSQL" in line
    assert "secret" not in result.stderr + result.stdout


def test_unmigrated_schema_says_to_migrate(pg_url, schema_name,
                                          localstack_endpoint):
    env = worker_env(pg_url, schema_name, localstack_endpoint, "s")
    line = _error_line(_run_worker(env))
    assert "ven-worker migrate" in line


@pytest.mark.parametrize("code", ["UnrecognizedClientException",
                                  "InvalidSignatureException"])
def test_rejected_credentials_become_a_config_error(code):
    error = ClientError({"Error": {"Code": code, "Message": "bad key"},
                         "ResponseMetadata": {"HTTPStatusCode": 400}},
                        "DescribeStreamSummary")

    translated = classify(error)

    assert isinstance(translated, ConfigError)
    assert "credentials" in str(translated)
