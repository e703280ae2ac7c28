"""worker_identity() against a local HTTP server standing in for the ECS task
metadata endpoint, and its fallback when there is none."""

import json
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from worker.leases.identity import ECS_METADATA_ENV, worker_identity

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/ingest/0f1e2d3c4b5a"
FALLBACK = re.compile(
    rf"^{re.escape(socket.gethostname())}:{os.getpid()}:[0-9a-f]{{6}}$"
)


def serve(status: int, body: bytes):
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, requested


@pytest.fixture
def metadata():
    servers = []

    def start(status=200, body=b""):
        server, requested = serve(status, body)
        servers.append(server)
        host, port = server.server_address
        return f"http://{host}:{port}/v4/abc", requested

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_identity_is_the_task_arn_on_ecs(metadata):
    uri, requested = metadata(body=json.dumps({"TaskARN": TASK_ARN}).encode())

    assert worker_identity({ECS_METADATA_ENV: uri}) == TASK_ARN
    assert requested == ["/v4/abc/task"]


def test_identity_without_ecs_is_host_pid_random():
    first = worker_identity({})
    second = worker_identity({})

    assert FALLBACK.match(first)
    assert first != second


@pytest.mark.parametrize(
    "status, body",
    [(500, b"oops"), (200, b"not json"), (200, b"{}"), (200, b"[1]"),
     (200, b'{"TaskARN": ""}')],
)
def test_identity_falls_back_when_metadata_is_unusable(metadata, status, body):
    uri, _ = metadata(status, body)

    assert FALLBACK.match(worker_identity({ECS_METADATA_ENV: uri}))


def test_identity_falls_back_when_the_endpoint_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.

    uri = f"http://127.0.0.1:{port}/v4/abc"

    assert FALLBACK.match(worker_identity({ECS_METADATA_ENV: uri}))
