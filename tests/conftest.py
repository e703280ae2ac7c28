"""Shared fixtures: a real PostgreSQL and a private schema per test.

The server is TEST_DATABASE_URL or DATABASE_URL when set, else the local
server on 127.0.0.1:5432 when one answers, else the embedded one (pgserver),
so the suite runs on a machine with nothing installed by hand. Each test that
asks for ``migrated_schema`` gets its own PostgreSQL schema, migrated to head
and dropped afterwards, so tests (and people) never share rows.
"""

import os
import uuid

import psycopg
import pytest

from worker.db.connect import connect
from worker.observe.logs import remove_logging

LOCAL_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _reachable(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


@pytest.fixture(autouse=True)
def _no_log_handler_outlives_its_test():
    """A test that runs the CLI in-process leaves its log handler on the
    stderr pytest captured for that test, a file closed once the test ends."""
    yield
    remove_logging()


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    if _reachable(LOCAL_DEFAULT_URL):
        return LOCAL_DEFAULT_URL
    from worker.db.embedded import start_embedded

    return start_embedded()


@pytest.fixture
def schema_name(pg_url):
    """A fresh, empty schema name; dropped with everything in it afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def migrated_schema(pg_url, schema_name):
    from worker.db import migrate

    migrate.upgrade(pg_url, schema_name)
    return schema_name


@pytest.fixture
def db(pg_url, migrated_schema):
    """An autocommit connection into the test's migrated schema."""
    conn = connect(pg_url, migrated_schema, autocommit=True)
    yield conn
    conn.close()
