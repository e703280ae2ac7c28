"""The embedded PostgreSQL a machine without a server falls back to: it
starts from nothing, takes the migrations, and stops on request."""

import os
import shutil

import psycopg

from worker.db import migrate
from worker.db.embedded import start_embedded, stop_embedded


def test_embedded_server_starts_migrates_and_stops(tmp_path):
    data_dir = tmp_path / "pgdata"
    if os.geteuid() == 0:
        # pgserver runs PostgreSQL as an unprivileged user, who must be able
        # to reach the data folder.
        os.chmod(tmp_path, 0o755)
    try:
        url = start_embedded(data_dir)
        migrate.upgrade(url, "embedded_check")
        with psycopg.connect(url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables "
                "WHERE schemaname = 'embedded_check'").fetchone()[0]

        assert tables >= 4
        assert stop_embedded(data_dir) is True
        assert stop_embedded(data_dir) is False
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
