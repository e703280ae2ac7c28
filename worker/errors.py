"""The worker's errors: one base, a few specific kinds.

``retriable`` says whether waiting and trying the same thing again can help;
loops decide by this attribute, never by matching messages.
"""


class WorkerError(Exception):
    retriable = False


class ConfigError(WorkerError):
    """Bad configuration or an unreachable dependency at start-up: the CLI
    prints the message as one line and exits non-zero."""


class LeaseLost(WorkerError):
    """The fenced commit found the shard owned by someone else (or by this
    worker under another lease counter). The batch is not stored; the reader
    must drop the shard."""


class TransientError(WorkerError):
    retriable = True


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (psycopg and botocore add
    detail lines), or its type's name when it has no message: enough for a
    one-line log or a one-line exit."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
