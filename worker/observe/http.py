"""The HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` for the
orchestrator. Standard library only, served from daemon threads so it never
holds up shutdown.
"""

import errno
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from worker.errors import ConfigError
from worker.observe.health import HealthState
from worker.observe.metrics import Metrics

log = logging.getLogger(__name__)

# How long close() waits for the serving thread; a scrape in progress is
# short, and shutdown must not hang on a slow client.
CLOSE_TIMEOUT_S = 5.0

# How often the serving thread looks for a close request. A tenth of a second
# keeps shutdown prompt, at a cost of ten idle wakeups a second.
POLL_INTERVAL_S = 0.1


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    # Answers are tiny and one per connection; keep-alive buys nothing here.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 -- the name http.server calls
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, content_type = self.server.metrics.exposition()
            self._reply(200, body, content_type)
        elif path == "/healthz":
            report = self.server.health.check()
            if report.ok:
                self._reply(200, b"ok\n", "text/plain; charset=utf-8")
            else:
                body = json.dumps(report.as_dict()).encode() + b"\n"
                self._reply(503, body, "application/json")
        else:
            self._reply(404, b"not found: try /metrics or /healthz\n",
                        "text/plain; charset=utf-8")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        # Scrapes every few seconds would drown the log at INFO.
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, metrics: Metrics, health: HealthState):
        self.metrics = metrics
        self.health = health
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class ObserveServer:
    """A running endpoint; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, server: _Server):
        self._server = server
        self.host, self.port = server.server_address[:2]
        self._thread = threading.Thread(
            target=server.serve_forever, args=(POLL_INTERVAL_S,),
            name="observe-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(CLOSE_TIMEOUT_S)


def serve(host: str, port: int, metrics: Metrics,
          health: HealthState) -> ObserveServer:
    """Start serving on ``host:port`` (port 0 picks a free one).

    Raises ConfigError when the address cannot be bound.
    """
    try:
        server = _Server((host, port), metrics, health)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "is in use"
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = "is not an address of this machine"
        else:
            why = f"cannot be bound ({exc.strerror})"
        raise ConfigError(f"METRICS_HOST:METRICS_PORT {host}:{port} {why}; "
                          "choose another, or METRICS_PORT=0 to turn the "
                          "endpoint off") from exc
    except UnicodeError as exc:
        raise ConfigError(f"METRICS_HOST {host!r} is not a host name") from exc
    log.info("serving /metrics and /healthz on %s:%d", host,
             server.server_address[1])
    return ObserveServer(server)
