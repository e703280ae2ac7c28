"""The container health check: ``python -m worker.observe.probe`` exits 0
when this container's worker answers ``/healthz`` with 200, else 1.

It reads the same METRICS_PORT and METRICS_HOST as the worker and touches
neither the database nor AWS, so a check costs little.
"""

import os
import sys
import urllib.error
import urllib.request

from worker.config import DEFAULT_METRICS_PORT

# Docker and ECS give a check a few seconds; answer before they give up.
PROBE_TIMEOUT_S = 3.0

# A server listening on every address is reached through loopback.
_ANY_ADDRESS = {"", "0.0.0.0", "::"}


def probe_url(environ=os.environ) -> str | None:
    port = (environ.get("METRICS_PORT") or str(DEFAULT_METRICS_PORT)).strip()
    if port == "0":
        return None
    host = (environ.get("METRICS_HOST") or "").strip()
    if host in _ANY_ADDRESS:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main() -> int:
    url = probe_url()
    if url is None:
        print("health endpoint is off (METRICS_PORT=0); assuming healthy")
        return 0
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as answer:
            print(answer.read(200).decode(errors="replace").strip())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"{exc.code}: {exc.read(500).decode(errors='replace').strip()}")
    except (urllib.error.URLError, OSError) as exc:
        print(f"no answer from {url}: {getattr(exc, 'reason', exc)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
