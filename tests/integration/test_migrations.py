"""Migrations against real PostgreSQL: up, down, and agreement with schema/."""

import psycopg

from worker.db import migrate

EXPECTED_TABLES = {
    "ven_telemetry",
    "ven_load_samples",
    "ven_last_seen",
    "shard_leases",
    "ingest_workers",
    "ingest_rejects",
}


def _tables(pg_url, schema):
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s "
            "UNION SELECT relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'p'",
            (schema, schema),
        ).fetchall()
    return {r[0] for r in rows}


def test_upgrade_creates_every_table_in_the_chosen_schema(pg_url, schema_name):
    migrate.upgrade(pg_url, schema_name)

    tables = _tables(pg_url, schema_name)

    assert EXPECTED_TABLES <= tables
    assert "ven_worker_alembic_version" in tables
    # The project's version table never collides with another application's.
    assert "alembic_version" not in tables


def test_migrations_agree_with_schema_package(pg_url, schema_name):
    migrate.upgrade(pg_url, schema_name)

    migrate.check(pg_url, schema_name)  # raises on any autogenerate diff


def test_downgrade_removes_every_table(pg_url, schema_name):
    migrate.upgrade(pg_url, schema_name)

    migrate.downgrade(pg_url, schema_name)

    assert not (EXPECTED_TABLES & _tables(pg_url, schema_name))


def test_upgrade_leaves_another_applications_history_alone(pg_url, schema_name):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema_name}"')
        conn.execute(
            f'CREATE TABLE "{schema_name}".alembic_version '
            "(version_num varchar(32) PRIMARY KEY)"
        )
        conn.execute(
            f"INSERT INTO \"{schema_name}\".alembic_version VALUES ('api_0042')"
        )

    migrate.upgrade(pg_url, schema_name)

    with psycopg.connect(pg_url) as conn:
        other = conn.execute(
            f'SELECT version_num FROM "{schema_name}".alembic_version'
        ).fetchall()
    assert other == [("api_0042",)]
