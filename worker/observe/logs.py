"""Log lines on stderr: JSON objects (one a line) for log collectors, or plain
text for people, with passwords masked in any URL or DSN.

Modules log through their own ``logging.getLogger(__name__)`` and pass ids as
``extra`` (``shard_id``, ``sequence_number``, ...); the JSON formatter turns
every extra attribute into a field.
"""

import json
import logging
import re
import sys
import traceback
from datetime import datetime, timezone

# Attributes every LogRecord has; anything else on a record came from
# ``extra=`` or a filter and is shown as a field.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord(
    "", logging.INFO, "", 0, "", None, None)).keys()) | {"message", "asctime"}

# user:password@ in any scheme://, and password=... in a libpq DSN.
_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@/]*(?P<tail>@)")
_DSN_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|[^\s]+)",
                           re.IGNORECASE)

# Libraries that narrate every request, plugin or pg_ctl call at INFO; their
# warnings still show. Alembic's migration steps stay at INFO.
_CHATTY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer",
                   "alembic.runtime.plugins", "alembic.ddl",
                   "alembic.autogenerate", "pgserver")


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL or DSN in it replaced by ***."""
    if "@" in text:
        text = _URL_PASSWORD.sub(r"\g<head>***\g<tail>", text)
    if "password" in text.lower():
        text = _DSN_PASSWORD.sub(r"\g<head>***", text)
    return text


class MaskSecrets(logging.Filter):
    """Masks passwords in the message and in string extras.

    Installed on the handler, so it sees records from every logger, the
    libraries' included. The message is rendered here once and its arguments
    dropped, so a formatter cannot bring the password back.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A malformed call (args not matching the format) is reported by
            # the handler's own error path; a filter must not raise.
            return True
        record.msg = mask_secrets(message)
        record.args = None
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and isinstance(value, str):
                setattr(record, key, mask_secrets(value))
        return True


class StaticFields(logging.Filter):
    """Adds the same fields (e.g. ``worker_id``) to every record that does not
    carry them already."""

    def __init__(self, **fields):
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _extras(record: logging.LogRecord) -> dict:
    return {key: value for key, value in vars(record).items()
            if key not in _RECORD_ATTRS and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, timezone.utc)
        line = {
            "ts": moment.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            line["exc"] = mask_secrets(text)
        # default=str: an extra that JSON cannot hold (a datetime, an enum)
        # is shown as text rather than losing the whole line.
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for a terminal."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        # The traceback is rendered after the filters ran.
        return mask_secrets(text) if record.exc_info else text


def setup_logging(level: str = "INFO", fmt: str = "json", stream=None,
                  **static_fields) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in the chosen format.

    Calling it again replaces the handler it installed before, so tests and
    the CLI can call it freely.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(StaticFields(**static_fields))
    handler.addFilter(MaskSecrets())
    handler._ven_worker = True  # marks the handler this function owns

    remove_logging()
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def remove_logging() -> None:
    """Take away the handler ``setup_logging`` installed, if any.

    Its stream may not outlive it: under pytest it is the stderr captured
    for one test, closed when that test ends, while libraries still log
    from their exit hooks (pgserver does).
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_ven_worker", False)]:
        root.removeHandler(old)
        old.close()
