"""Fault-injection scenarios: real worker processes, LocalStack and
PostgreSQL, faults, and one checker at the end of each.

Every test here is marked ``faults`` (``-m faults`` runs the suite alone,
``-m "not faults"`` leaves it out); the scenarios, which need LocalStack
like the end-to-end tests, are marked ``e2e`` too. Each scenario prints one report line;
all of them are appended to FAULTS_RESULTS (default
build/faults/results.jsonl) and listed at the end of the run.
"""

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import (  # noqa: F401 (fixtures, re-exported)
    kinesis_client,
    localstack_endpoint,
    make_stream,
)
from tests.faults.scenario import Results, Scenario

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS = ROOT / "build" / "faults" / "results.jsonl"

_results_key = pytest.StashKey[Results]()


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.faults)
            if "scenario" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.e2e)


def pytest_configure(config):
    path = Path(os.environ.get("FAULTS_RESULTS") or DEFAULT_RESULTS)
    config.stash[_results_key] = Results(path)


def pytest_terminal_summary(terminalreporter, config):
    results = config.stash.get(_results_key, None)
    if not results or not results.reports:
        return
    terminalreporter.section("fault scenarios")
    for report in results.reports:
        mark = "ok  " if report.ok else "FAIL"
        terminalreporter.write_line(f"{mark} {report.line()}")
    terminalreporter.write_line(f"(appended to {results.path})")


@pytest.fixture
def scenario(request, pg_url, migrated_schema, localstack_endpoint,
             kinesis_client, make_stream, tmp_path):
    """A Scenario named after the test; its workers, proxies and load are
    stopped afterwards whatever happened."""
    name = request.node.name.removeprefix("test_")
    run = Scenario(name, pg_url, migrated_schema, localstack_endpoint,
                   kinesis_client, make_stream, tmp_path,
                   request.config.stash[_results_key])
    yield run
    run.close()
