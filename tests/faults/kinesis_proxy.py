"""An HTTP forwarder in front of LocalStack that injects Kinesis faults on the
wire, for workers that run as subprocesses (KINESIS_ENDPOINT points here).

Throttling and 5xx answers are JSON errors as Kinesis sends them; a timeout
is a request forwarded and done, then the connection closed unanswered.
"""

import http.client
import http.server
import logging
import threading
from urllib.parse import urlsplit

import orjson

from tests.faults.kinesis_faults import (
    SERVER,
    THROTTLE,
    TIMEOUT,
    FaultDice,
    server_code,
    throttle_code,
)

log = logging.getLogger(__name__)

# LocalStack answers in milliseconds; this only bounds a hung forward.
FORWARD_TIMEOUT_S = 30

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host",
               "content-length"}


class KinesisFaultProxy:
    """``url`` forwards to ``endpoint`` with faults rolled by ``dice``."""

    def __init__(self, endpoint: str, dice: FaultDice):
        target = urlsplit(endpoint)
        proxy = self
        self.dice = dice
        self._served = 0
        self._lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                proxy._handle(self, target.hostname, target.port)

            def log_message(self, *_args):
                pass  # quiet: one line per request would drown the test log

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                       Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="kinesis-fault-proxy",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request, host: str, port: int) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length",
                                                          0)))
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        fault = self.dice.roll(operation)
        if fault == THROTTLE:
            return _error(request, throttle_code(operation), 400)
        if fault == SERVER:
            with self._lock:
                self._served += 1
                code, status = server_code(self._served)
            return _error(request, code, status)

        status, headers, answer = _forward(request, host, port, body)
        if fault == TIMEOUT:
            request.close_connection = True  # done upstream, never answered
            return None
        request.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        request.wfile.write(answer)
        return None


def _forward(request, host: str, port: int, body: bytes):
    conn = http.client.HTTPConnection(host, port, timeout=FORWARD_TIMEOUT_S)
    try:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in _HOP_BY_HOP}
        conn.request("POST", request.path, body, headers)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def _error(request, code: str, status: int) -> None:
    body = orjson.dumps({"__type": code, "message": "injected by the test"})
    request.send_response(status)
    request.send_header("Content-Type", "application/x-amz-json-1.1")
    request.send_header("x-amzn-ErrorType", code)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)
