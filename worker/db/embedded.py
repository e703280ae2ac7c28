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
