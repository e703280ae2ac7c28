"""A worker id that is unique in the fleet and tells an operator where the
worker runs: the ECS task ARN on ECS, else host:pid:random."""

import json
import logging
import os
import secrets
import socket
import urllib.error
import urllib.request

log = logging.getLogger(__name__)

ECS_METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"

# The task metadata endpoint is local to the task and answers in
# milliseconds; a second is plenty, and start-up must not hang on it when it
# is absent or wedged.
ECS_METADATA_TIMEOUT_S = 1.0


def _task_arn(metadata_uri: str) -> str | None:
    try:
        with urllib.request.urlopen(
            metadata_uri.rstrip("/") + "/task",
            timeout=ECS_METADATA_TIMEOUT_S,
        ) as response:
            document = json.loads(response.read())
    except (OSError, ValueError) as exc:
        # URLError, timeouts and refused connections are OSErrors; a body
        # that is not JSON is a ValueError.
        log.warning("ECS task metadata unavailable (%s); using host:pid",
                    exc)
        return None
    arn = document.get("TaskARN") if isinstance(document, dict) else None
    if not isinstance(arn, str) or not arn:
        log.warning("ECS task metadata has no TaskARN; using host:pid")
        return None
    return arn


def worker_identity(environ: dict | None = None) -> str:
    """The ECS task ARN when running on ECS, else ``host:pid:random6``.

    The random part keeps two processes apart when a container reuses a pid
    (pid 1 in every container on the same host name).
    """
    env = os.environ if environ is None else environ
    uri = env.get(ECS_METADATA_ENV)
    if uri:
        arn = _task_arn(uri)
        if arn:
            return arn
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
