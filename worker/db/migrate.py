"""Running the project's Alembic migrations from code (CLI, tests, demo).

The migrations live in the repository's ``alembic/`` folder, next to this
package; a wheel install without the repository cannot migrate.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config

from worker.db.connect import check_schema_name

REPO_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str, schema: str = "public") -> Config:
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["schema"] = check_schema_name(schema)
    return cfg


def upgrade(database_url: str, schema: str = "public", revision="head") -> None:
    command.upgrade(alembic_config(database_url, schema), revision)


def downgrade(database_url: str, schema: str = "public", revision="base") -> None:
    command.downgrade(alembic_config(database_url, schema), revision)


def check(database_url: str, schema: str = "public") -> None:
    """Raise when the migrations and ``schema/`` disagree."""
    command.check(alembic_config(database_url, schema))
