"""Log lines: one JSON object each, ids as fields, passwords never shown."""

import io
import json
import logging

import pytest

from worker.observe.logs import mask_secrets, remove_logging, setup_logging


@pytest.fixture
def captured():
    """Every record of the test, formatted by the worker's handler."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level

    def install(fmt="json", level="INFO", **static):
        return setup_logging(level, fmt, stream=stream, **static)

    yield install, stream
    remove_logging()
    root.setLevel(level)


def lines_of(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_the_standard_fields_and_the_extras(captured):
    install, stream = captured
    install(worker_id="w-1")
    log = logging.getLogger("worker.sink.copy")

    log.info("stored %d readings", 42,
             extra={"shard_id": "shardId-000000000001",
                    "sequence_number": "4959"})

    [line] = lines_of(stream)
    assert line["level"] == "INFO"
    assert line["logger"] == "worker.sink.copy"
    assert line["msg"] == "stored 42 readings"
    assert line["shard_id"] == "shardId-000000000001"
    assert line["sequence_number"] == "4959"
    assert line["worker_id"] == "w-1"
    assert line["ts"].endswith("Z") and "T" in line["ts"]


def test_password_in_a_url_argument_is_masked(captured):
    install, stream = captured
    install()

    logging.getLogger("worker.db").warning(
        "cannot reach %s", "postgresql://ingest:s3cret@db:5432/energy")

    raw = stream.getvalue()
    assert "s3cret" not in raw
    assert lines_of(stream)[0]["msg"] == (
        "cannot reach postgresql://ingest:***@db:5432/energy")


def test_password_in_extras_and_tracebacks_is_masked(captured):
    install, stream = captured
    install()
    log = logging.getLogger("worker.runtime")

    try:
        raise RuntimeError("lost postgresql://u:topsecret@h/db")
    except RuntimeError:
        log.exception("failed", extra={"url": "postgres://a:topsecret@b/c"})

    raw = stream.getvalue()
    assert "topsecret" not in raw
    [line] = lines_of(stream)
    assert line["url"] == "postgres://a:***@b/c"
    assert "RuntimeError: lost postgresql://u:***@h/db" in line["exc"]


def test_libraries_loggers_are_masked_too(captured):
    install, stream = captured
    install()

    logging.getLogger("psycopg.pool").error(
        "connection failed: host=db password=hunter2 dbname=x")

    assert "hunter2" not in stream.getvalue()
    assert "password=***" in lines_of(stream)[0]["msg"]


def test_text_format_is_one_readable_line(captured):
    install, stream = captured
    install(fmt="text")

    logging.getLogger("worker.kinesis").info(
        "shard %s ended", "shardId-000000000002",
        extra={"shard_id": "shardId-000000000002"})

    [text] = stream.getvalue().splitlines()
    assert " INFO worker.kinesis: shard shardId-000000000002 ended" in text
    assert text.endswith("shard_id=shardId-000000000002")


def test_level_filters_lower_records(captured):
    install, stream = captured
    install(level="WARNING")

    logging.getLogger("worker.x").info("quiet")
    logging.getLogger("worker.x").warning("loud")

    assert [line["msg"] for line in lines_of(stream)] == ["loud"]


def test_setting_up_twice_keeps_one_handler(captured):
    install, stream = captured
    install()
    install()

    logging.getLogger("worker.x").warning("once")

    assert len(lines_of(stream)) == 1


def test_values_json_cannot_hold_are_shown_as_text(captured):
    install, stream = captured
    install()

    logging.getLogger("worker.x").info("odd", extra={"count": {1, 2}.__len__(),
                                                     "when": object})

    [line] = lines_of(stream)
    assert line["count"] == 2
    assert line["when"] == "<class 'object'>"


@pytest.mark.parametrize("text, expected", [
    ("https://user:pa:ss@host/x", "https://user:***@host/x"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
    ("no secrets here", "no secrets here"),
    ("password='a b' host=x", "password=*** host=x"),
    ("a mqtt://u:p@broker:1883 b", "a mqtt://u:***@broker:1883 b"),
])
def test_mask_secrets(text, expected):
    assert mask_secrets(text) == expected


def test_libraries_chat_only_from_warning_up(captured):
    # pgserver tells at INFO how it runs pg_ctl and, at exit, what it
    # cleans up; boto3's stack tells every request.
    install, stream = captured
    install()
    for name in ("pgserver", "botocore.endpoint"):
        logging.getLogger(name).info("chatter")
        logging.getLogger(name).warning("worth seeing")

    assert [(line["logger"], line["msg"]) for line in lines_of(stream)] == [
        ("pgserver", "worth seeing"), ("botocore.endpoint", "worth seeing")]
