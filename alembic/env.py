"""Alembic environment for the worker's tables.

The worker may share a database with another application that has its own
Alembic history, so this project keeps its own version table
(``VERSION_TABLE``) inside its own schema, and touches nothing else.
"""

import os

from alembic import context
from sqlalchemy import create_engine, text

from schema import metadata
from schema.ddl import is_partition_child

VERSION_TABLE = "ven_worker_alembic_version"

config = context.config


def _sqlalchemy_url(url: str) -> str:
    # The project uses psycopg 3 everywhere; SQLAlchemy needs to be told.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _include_object(obj, name, type_, reflected, compare_to):
    # Daily partitions are created at run time by the sink; they are not part
    # of the declared schema and must not show up as drift.
    if type_ == "table" and reflected and is_partition_child(name):
        return False
    if type_ == "table" and name == VERSION_TABLE:
        return False
    return True


def run_migrations_online() -> None:
    url = config.attributes.get("database_url") or os.environ.get(
        "DATABASE_URL"
    )
    if not url:
        raise SystemExit(
            "DATABASE_URL is not set: point it at the PostgreSQL to migrate"
        )
    schema = config.attributes.get("schema") or os.environ.get(
        "PG_SCHEMA", "public"
    )
    engine = create_engine(
        _sqlalchemy_url(url),
        connect_args={"options": f"-c search_path={schema} -c timezone=UTC"},
    )
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=VERSION_TABLE,
            version_table_schema=schema,
            include_object=_include_object,
            compare_server_default=False,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
