"""Settings: flags over environment over defaults, one line per mistake, and
the README and deployment files kept in step with the definitions."""

import json
import re
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

import pytest

from worker.config import (
    MIB,
    OPTIONS,
    OPTIONS_BY_NAME,
    Settings,
    SettingsInvalid,
    config_table_rows,
    ensure_database_url,
    load_settings,
    render_config_table,
)
from worker.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def problems_of(flags=None, environ=None) -> tuple[str, ...]:
    with pytest.raises(SettingsInvalid) as caught:
        load_settings(flags or {}, environ or {})
    return caught.value.problems


# -- defaults and sources ------------------------------------------------


def test_load_settings_without_input_gives_documented_defaults():
    s = load_settings({}, {})

    assert s.stream_name == "mqtt-forward-mqtt-stream"
    assert s.database_url is None
    assert s.pg_schema == "public"
    assert s.kinesis_endpoint is None
    assert s.aws_region == "us-east-1"
    assert s.shards == "all"
    assert s.initial_position == "TRIM_HORIZON"
    assert s.initial_timestamp is None
    assert s.max_records == 10_000
    assert s.idle_interval_s == 1.0
    assert s.lease_duration_s == 10.0
    assert s.renew_interval_s == pytest.approx(10.0 / 3)
    assert s.discovery_interval_s == 60
    assert s.max_inflight_bytes == 80 * MIB
    assert s.max_record_bytes == 1 * MIB
    assert s.max_future_skew_s == 3600
    assert s.retention_days == 0
    assert s.partitions_ahead_days == 7
    assert s.metrics_port == 9108
    assert s.metrics_host == "0.0.0.0"
    assert s.log_level == "INFO"
    assert s.log_format == "json"


def test_worker_id_is_left_to_the_runtime_when_not_given():
    # The lease package makes the id (the ECS task ARN when there is one).
    assert load_settings({}, {}).worker_id is None
    assert load_settings({}, {"WORKER_ID": "w-1"}).worker_id == "w-1"


def test_environment_sets_every_kind_of_value():
    s = load_settings({}, {
        "STREAM_NAME": "telemetry-2",
        "DATABASE_URL": "postgresql://ingest:pw@db.internal:5432/energy",
        "PG_SCHEMA": "ingest",
        "SHARDS": "2/3",
        "MAX_RECORDS": "500",
        "LEASE_DURATION_S": "30",
        "MAX_INFLIGHT_BYTES": "128MiB",
        "MAX_RECORD_BYTES": "262144",
        "INITIAL_POSITION": "at_timestamp",
        "INITIAL_TIMESTAMP": "2025-12-01T02:00:00+02:00",
        "LOG_FORMAT": "TEXT",
        "WORKER_ID": "task-7",
    })

    assert s.stream_name == "telemetry-2"
    assert s.database_url.endswith("@db.internal:5432/energy")
    assert s.pg_schema == "ingest"
    assert s.shards == "2/3"
    assert s.max_records == 500
    assert s.renew_interval_s == pytest.approx(10.0)
    assert s.max_inflight_bytes == 128 * MIB
    assert s.max_record_bytes == 256 * 1024
    assert s.initial_position == "AT_TIMESTAMP"
    assert s.initial_timestamp == datetime(2025, 12, 1, tzinfo=timezone.utc)
    assert s.log_format == "text"
    assert s.worker_id == "task-7"


def test_flag_wins_over_environment():
    s = load_settings({"stream_name": "from-flag"},
                      {"STREAM_NAME": "from-env"})

    assert s.stream_name == "from-flag"


def test_fallback_variables_apply_only_without_the_main_one():
    only_fallback = load_settings({}, {
        "LOCALSTACK_ENDPOINT": "http://127.0.0.1:4566",
        "AWS_DEFAULT_REGION": "eu-west-1",
    })
    both = load_settings({}, {
        "KINESIS_ENDPOINT": "http://kinesis.local:4567",
        "LOCALSTACK_ENDPOINT": "http://127.0.0.1:4566",
        "AWS_REGION": "eu-central-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    })

    assert only_fallback.kinesis_endpoint == "http://127.0.0.1:4566"
    assert only_fallback.aws_region == "eu-west-1"
    assert both.kinesis_endpoint == "http://kinesis.local:4567"
    assert both.aws_region == "eu-central-1"


def test_empty_values_count_as_not_given():
    s = load_settings({"pg_schema": ""},
                      {"DATABASE_URL": "", "METRICS_PORT": "  "})

    assert s.database_url is None
    assert s.pg_schema == "public"
    assert s.metrics_port == 9108


def test_naive_initial_timestamp_is_read_as_utc():
    s = load_settings({"initial_position": "AT_TIMESTAMP",
                       "initial_timestamp": "2025-12-01 00:00:00"}, {})

    assert s.initial_timestamp == datetime(2025, 12, 1, tzinfo=timezone.utc)


# -- mistakes ------------------------------------------------------------


def test_every_mistake_is_reported_once_on_its_own_line():
    problems = problems_of(
        {"max_records": "0", "metrics_port": "http"},
        {"LOG_LEVEL": "loud", "PG_SCHEMA": "Bad-Schema",
         "IDLE_INTERVAL_S": "-1", "MAX_INFLIGHT_BYTES": "64MB",
         "INITIAL_POSITION": "EARLIEST", "STREAM_NAME": "has space"},
    )

    assert len(problems) == 8
    assert all("\n" not in p for p in problems)
    joined = "\n".join(problems)
    for name in ("--max-records", "--metrics-port", "LOG_LEVEL", "PG_SCHEMA",
                 "IDLE_INTERVAL_S", "MAX_INFLIGHT_BYTES", "INITIAL_POSITION",
                 "STREAM_NAME"):
        assert re.search(rf"^{re.escape(name)} ", joined, re.MULTILINE), name


def test_settings_invalid_is_a_config_error_with_one_line_each():
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {"MAX_RECORDS": "10001", "RETENTION_DAYS": "-1"})

    assert str(caught.value).splitlines() == list(caught.value.problems)
    assert "MAX_RECORDS must be from 1 to 10000, got '10001'" in str(
        caught.value)


def test_bad_database_url_is_reported_without_its_password():
    problems = problems_of({}, {
        "DATABASE_URL": "postgresql://u:hunter2@h/db?nonsense=1"})

    assert len(problems) == 1
    assert problems[0].startswith("DATABASE_URL ")
    assert "hunter2" not in problems[0]


def test_at_timestamp_without_a_timestamp_is_a_mistake():
    problems = problems_of({"initial_position": "AT_TIMESTAMP"})

    assert problems == ("INITIAL_POSITION AT_TIMESTAMP needs INITIAL_TIMESTAMP "
                        "(--initial-timestamp), an ISO-8601 time",)


def test_timestamp_with_another_position_is_a_mistake():
    problems = problems_of({}, {"INITIAL_TIMESTAMP": "2025-12-01T00:00:00Z"})

    assert len(problems) == 1
    assert "only used with INITIAL_POSITION AT_TIMESTAMP" in problems[0]


def test_unparseable_timestamp_names_the_expected_form():
    problems = problems_of({"initial_position": "AT_TIMESTAMP",
                            "initial_timestamp": "yesterday"})

    # The cross-check is not piled on top of the field's own mistake.
    assert len(problems) == 1
    assert problems[0].startswith("--initial-timestamp is not an ISO-8601")


def test_renewal_must_come_before_the_lease_expires():
    problems = problems_of({}, {"LEASE_DURATION_S": "6",
                                "RENEW_INTERVAL_S": "6"})

    assert len(problems) == 1
    assert problems[0].startswith("RENEW_INTERVAL_S 6 must be under "
                                  "LEASE_DURATION_S 6")


def test_record_limit_cannot_exceed_the_inflight_budget():
    problems = problems_of({}, {"MAX_INFLIGHT_BYTES": "2MiB",
                                "MAX_RECORD_BYTES": "4MiB"})

    assert len(problems) == 1
    assert "only while no other page is in flight" in problems[0]


def test_future_skew_must_be_covered_by_partitions_made_ahead():
    problems = problems_of({}, {"PARTITIONS_AHEAD_DAYS": "1",
                                "MAX_FUTURE_SKEW_S": "172800"})

    assert len(problems) == 1
    assert problems[0].startswith("PARTITIONS_AHEAD_DAYS 1 does not cover")


@pytest.mark.parametrize("selector", ["all", "1/2", "2/2",
                                      "shardId-000000000001"])
def test_valid_shard_selectors_are_accepted(selector):
    assert load_settings({"shards": selector}, {}).shards == selector


@pytest.mark.parametrize("selector", ["3/2", "0/2", "shard-1,,", "some"])
def test_invalid_shard_selectors_are_one_mistake(selector):
    problems = problems_of({"shards": selector})

    assert len(problems) == 1
    assert problems[0].startswith("--shards is not a shard selector")


@pytest.mark.parametrize("env, value", [
    ("KINESIS_ENDPOINT", "localhost:4566"),
    ("AWS_REGION", "Europe"),
    ("WORKER_ID", "two words"),
    ("DISCOVERY_INTERVAL_S", "nan"),
    ("MAX_RECORD_BYTES", "12"),
])
def test_out_of_shape_values_are_rejected(env, value):
    problems = problems_of({}, {env: value})

    assert len(problems) == 1
    assert problems[0].startswith(env + " ")


# -- the definitions and what is generated from them ----------------------


def test_every_field_has_one_option_with_an_upper_case_variable():
    assert [o.name for o in OPTIONS] == [f.name for f in fields(Settings)]
    envs = [name for o in OPTIONS for name in o.env]
    assert len(envs) == len(set(envs))
    for option in OPTIONS:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", option.env[0])
        assert option.help.endswith(".")


def test_describe_masks_the_database_password():
    s = load_settings({}, {"DATABASE_URL": "postgresql://u:hunter2@h/db"})

    shown = s.describe()

    assert shown["database_url"] == "postgresql://u:***@h/db"
    assert "hunter2" not in json.dumps(shown)
    assert shown["max_inflight_bytes"] == "80MiB"


def test_config_table_has_a_row_per_setting():
    rows = config_table_rows()
    table = render_config_table()

    assert len(rows) == len(OPTIONS)
    assert len(table.splitlines()) == len(OPTIONS) + 2
    assert "| `DATABASE_URL` | `--database-url` | embedded PostgreSQL |" in table


def test_deploy_readme_table_matches_the_definitions():
    text = (REPO / "deploy" / "README.md").read_text()
    start = text.index("<!-- config-table:start -->\n") + len(
        "<!-- config-table:start -->\n")
    end = text.index("<!-- config-table:end -->")

    assert text[start:end] == render_config_table()


def test_ecs_task_definition_sets_every_setting():
    task = json.loads((REPO / "deploy" / "ecs-task-definition.json")
                      .read_text())
    container = task["containerDefinitions"][0]
    given = {e["name"]: e["value"] for e in container["environment"]}
    secret = {s["name"] for s in container["secrets"]}

    # Each setting appears by its own variable (empty: the default applies);
    # the database URL only as a secret.
    assert set(given) == {o.env[0] for o in OPTIONS} - {"DATABASE_URL"}
    assert secret == {"DATABASE_URL"}
    assert all(isinstance(v, str) for v in given.values())
    # The example's values are valid settings.
    s = load_settings({}, given)
    assert s.shards == "1/2"
    assert container["stopTimeout"] <= 120


def test_iam_policy_grants_exactly_the_worker_calls():
    policy = json.loads((REPO / "deploy" / "iam-policy.json").read_text())
    operator = json.loads((REPO / "deploy" / "iam-operator-policy.json")
                          .read_text())

    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert actions == {"kinesis:ListShards", "kinesis:GetShardIterator",
                       "kinesis:GetRecords",
                       "kinesis:DescribeStreamSummary"}
    scale_actions = {a for st in operator["Statement"] for a in st["Action"]}
    assert "kinesis:UpdateShardCount" in scale_actions
    for statement in policy["Statement"] + operator["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Resource"].startswith("arn:aws:kinesis:")
        assert "*" not in statement["Resource"]


def test_ensure_database_url_keeps_a_configured_url():
    s = load_settings({}, {"DATABASE_URL": "postgresql://u@h/db"})

    assert ensure_database_url(s) is s


def test_option_defaults_are_the_field_defaults():
    for f in fields(Settings):
        assert OPTIONS_BY_NAME[f.name].default == f.default
