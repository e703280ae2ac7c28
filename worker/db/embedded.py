"""An embedded throwaway PostgreSQL for machines that have none.

``pgserver`` ships PostgreSQL binaries inside its wheel, so a fresh machine
needs nothing installed by hand. The server keeps its data in one folder and
listens on a Unix socket in that folder only.
"""

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(
    os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")
) / "ven-worker" / "pgdata"


def start_embedded(data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """Start (or reuse) the embedded server and return its URL.

    The server outlives this process on purpose: several worker processes of
    one demo share it, and the next run reuses its data.
    """
    import pgserver  # imported late: it is only needed without DATABASE_URL

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode=None)
    url = server.get_uri()
    log.info("embedded PostgreSQL ready in %s", data_dir)
    return url


def stop_embedded(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    """Stop the embedded server if it runs; True when one was stopped. Its
    data stays in ``data_dir`` for the next run."""
    if not (data_dir / "postmaster.pid").exists():
        return False
    import pgserver

    kwargs = {}
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; pgserver runs it as the data
        # folder's owner, and pg_ctl must be that user too.
        import pwd

        kwargs["user"] = pwd.getpwuid(data_dir.stat().st_uid).pw_name
    pgserver.pg_ctl(["-m", "fast", "stop"], pgdata=data_dir, **kwargs)
    log.info("embedded PostgreSQL in %s stopped", data_dir)
    return True


if __name__ == "__main__":
    # `python -m worker.db.embedded stop` (what `make stop` runs).
    import sys

    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m worker.db.embedded stop")
    print("embedded PostgreSQL stopped" if stop_embedded()
          else "embedded PostgreSQL was not running")
