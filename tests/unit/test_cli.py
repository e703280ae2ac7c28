"""The CLI: thin over plain functions, one error line, the right exit code.

Commands whose modules other parts of the project provide are exercised with
stand-in modules put in ``sys.modules``, so these tests say what the CLI
does whether or not those modules exist yet.
"""

import logging
import os
import subprocess
import sys
import types
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from worker import cli
from worker.config import OPTIONS
from worker.errors import ConfigError, WorkerError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    # The tests decide every setting; the caller's environment must not leak.
    for option in OPTIONS:
        for name in option.env:
            monkeypatch.delenv(name, raising=False)
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers
                    if getattr(h, "_ven_worker", False)]:
        root.removeHandler(handler)


def stand_in(monkeypatch, module_name: str, **functions):
    """Put a module with these functions where the CLI will import it."""
    module = types.ModuleType(module_name)
    for name, function in functions.items():
        setattr(module, name, function)
    monkeypatch.setitem(sys.modules, module_name, module)
    return module


def absent(monkeypatch, module_name: str):
    # None in sys.modules makes the import fail as if the file were missing.
    monkeypatch.setitem(sys.modules, module_name, None)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line]


# -- help ----------------------------------------------------------------


def test_help_of_a_command_names_every_flag_variable_and_default(
        monkeypatch, capsys):
    # Wide enough that argparse does not break a default at its hyphens.
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "--help"])

    out = " ".join(capsys.readouterr().out.split())
    assert exited.value.code == 0
    for option in OPTIONS:
        assert option.flag in out
        assert f"env {' or '.join(option.env)};" in out
        assert f"default: {' '.join(option.default_text.split())}]" in out


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])

    out = capsys.readouterr().out
    for name in ("run", "migrate", "status", "scale", "reset", "redrive",
                 "demo"):
        assert f"    {name} " in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: ven-worker" in capsys.readouterr().err


# -- configuration errors ------------------------------------------------


def test_bad_settings_print_one_error_line_each_and_exit_2(monkeypatch,
                                                          capsys):
    monkeypatch.setenv("LOG_FORMAT", "xml")
    calls = []
    stand_in(monkeypatch, "worker.runtime", run=calls.append)

    code = cli.main(["run", "--max-records", "0", "--database-url",
                     "postgresql://u:hunter2@h/db"])

    out, err = capsys.readouterr()
    assert code == 2
    assert calls == []
    assert out == ""
    assert error_lines(err) == [
        "ven-worker: error: --max-records must be from 1 to 10000, got '0'",
        "ven-worker: error: LOG_FORMAT must be one of json, text, got 'xml'",
    ]


# -- commands that other modules provide -----------------------------------


@pytest.mark.parametrize("argv, module_name", [
    (["status"], "worker.ops.status"),
    (["scale", "--shards", "4"], "worker.ops.scale"),
    (["reset", "--all"], "worker.ops.reset"),
    (["redrive"], "worker.ops.redrive"),
    (["demo"], "worker.demo"),
    (["run"], "worker.runtime"),
])
def test_missing_command_module_is_one_line_and_exit_2(monkeypatch, capsys,
                                                       argv, module_name):
    absent(monkeypatch, module_name)

    code = cli.main(argv + ["--database-url", "postgresql://u@h/db"])

    assert code == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line == (f"ven-worker: error: {argv[0]} is not available yet "
                    f"({module_name} is missing)")


def test_run_hands_the_settings_to_the_runtime_and_returns_its_code(
        monkeypatch, capsys):
    seen = []

    def run(settings):
        logging.getLogger("worker.runtime").info("running")
        seen.append(settings)
        return 3

    stand_in(monkeypatch, "worker.runtime", run=run)
    monkeypatch.setenv("SHARDS", "2/2")

    code = cli.main(["run", "--database-url", "postgresql://u:pw@h/db",
                     "--worker-id", "w-9"])

    out, err = capsys.readouterr()
    assert code == 3
    [settings] = seen
    assert (settings.shards, settings.worker_id) == ("2/2", "w-9")
    assert settings.database_url == "postgresql://u:pw@h/db"
    # Logs go to stderr as JSON, never the password; stdout stays clean.
    assert out == ""
    assert '"msg": "running"' in err
    assert '"worker_id": "w-9"' in err
    assert "u:pw@" not in err


def test_run_names_the_worker_when_no_id_is_configured(monkeypatch, capsys):
    seen = []
    stand_in(monkeypatch, "worker.runtime", run=seen.append)
    monkeypatch.delenv("ECS_CONTAINER_METADATA_URI_V4", raising=False)

    code = cli.main(["run", "--database-url", "postgresql://u@h/db"])

    [settings] = seen
    assert code == 0
    assert settings.worker_id and settings.worker_id.count(":") == 2
    assert f'"worker_id": "{settings.worker_id}"' in capsys.readouterr().err


def test_status_passes_the_json_choice(monkeypatch):
    calls = []
    stand_in(monkeypatch, "worker.ops.status",
             status=lambda settings, as_json: calls.append(as_json))

    codes = [cli.main(["status", "--database-url", "postgresql://u@h/db"]),
             cli.main(["status", "--json", "--database-url",
                       "postgresql://u@h/db"])]

    assert codes == [0, 0]
    assert calls == [False, True]


def test_scale_takes_a_count_not_a_selector(monkeypatch):
    calls = []
    stand_in(monkeypatch, "worker.ops.scale",
             scale=lambda settings, shards: calls.append((settings.shards,
                                                          shards)))

    assert cli.main(["scale", "--shards", "4"]) == 0
    assert calls == [("all", 4)]
    with pytest.raises(SystemExit) as exited:
        cli.main(["scale", "--shards", "0"])
    assert exited.value.code == 2


def test_reset_passes_its_target(monkeypatch):
    calls = []
    stand_in(monkeypatch, "worker.ops.reset",
             reset=lambda settings, **kw: calls.append(kw))

    code = cli.main(["reset", "--shard", "shardId-000000000001",
                     "--to-timestamp", "2025-12-01T00:00:00Z",
                     "--database-url", "postgresql://u@h/db"])

    assert code == 0
    assert calls == [dict(shard="shardId-000000000001", all_shards=False,
                          to_timestamp=datetime(2025, 12, 1,
                                                tzinfo=timezone.utc),
                          to_sequence=None)]


def test_reset_to_a_sequence_of_every_shard_is_refused(monkeypatch, capsys):
    calls = []
    stand_in(monkeypatch, "worker.ops.reset",
             reset=lambda settings, **kw: calls.append(kw))

    code = cli.main(["reset", "--all", "--to-sequence", "4959"])

    assert code == 2
    assert calls == []
    assert "needs --shard" in capsys.readouterr().err


def test_reset_needs_a_shard_or_all(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["reset"])

    assert exited.value.code == 2
    assert "--shard" in capsys.readouterr().err


def test_a_dependency_missing_inside_a_command_is_not_hidden(monkeypatch,
                                                             capsys):
    def broken_import(name):
        raise ModuleNotFoundError("No module named 'nonexistent_dep'",
                                  name="nonexistent_dep")

    monkeypatch.setattr(cli.importlib, "import_module", broken_import)

    code = cli.main(["status", "--database-url", "postgresql://u@h/db"])

    assert code == 1
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith("ven-worker: error: unexpected "
                           "ModuleNotFoundError: No module named")


# -- errors and --traceback ----------------------------------------------


@pytest.mark.parametrize("error, code", [
    (WorkerError("stream gone"), 1),
    (ConfigError("stream mqtt-x does not exist"), 2),
])
def test_worker_errors_are_one_line_with_their_exit_code(monkeypatch, capsys,
                                                         error, code):
    def fail(settings):
        raise error

    stand_in(monkeypatch, "worker.demo", run_demo=fail)

    assert cli.main(["demo", "--database-url", "postgresql://u@h/db"]) == code
    err = capsys.readouterr().err
    assert error_lines(err) == [f"ven-worker: error: {error}"]
    assert "Traceback" not in err


def test_traceback_flag_shows_the_stack_with_secrets_masked(monkeypatch,
                                                            capsys):
    def fail(settings):
        raise RuntimeError("boom at postgresql://u:hunter2@h/db")

    stand_in(monkeypatch, "worker.demo", run_demo=fail)

    code = cli.main(["--traceback", "demo", "--database-url",
                     "postgresql://u@h/db"])

    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert "hunter2" not in err
    assert err.splitlines()[-1] == ("ven-worker: error: unexpected "
                                    "RuntimeError: boom at "
                                    "postgresql://u:***@h/db")


def test_config_prints_effective_settings_masked(capsys):
    code = cli.main(["config", "--database-url", "postgresql://u:pw@h/db",
                     "--shards", "1/2"])

    out = capsys.readouterr().out
    assert code == 0
    assert '"database_url": "postgresql://u:***@h/db"' in out
    assert '"shards": "1/2"' in out


# -- migrate against a real PostgreSQL --------------------------------------


def with_password(url: str, password: str) -> str:
    # Trust authentication ignores the password, so it only tests masking.
    scheme, rest = url.split("://", 1)
    creds, host = rest.split("@", 1) if "@" in rest else ("postgres", rest)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:{password}@{host}"


def tables_in(pg_url: str, schema: str) -> set[str]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s",
            (schema,)).fetchall()
    return {name for (name,) in rows}


def test_migrate_upgrades_checks_and_downgrades(pg_url, schema_name, capsys):
    if "://" not in pg_url:
        pytest.skip("needs a URL-form DATABASE_URL")
    url = with_password(pg_url, "hunter2")
    where = ["--database-url", url, "--pg-schema", schema_name]

    upgraded = cli.main(["migrate", *where])
    after_upgrade = tables_in(pg_url, schema_name)
    checked = cli.main(["migrate", "--check", *where])
    downgraded = cli.main(["migrate", "--downgrade", "base", *where])
    after_downgrade = tables_in(pg_url, schema_name)
    failed_check = cli.main(["migrate", "--check", *where])

    out, err = capsys.readouterr()
    assert (upgraded, checked, downgraded, failed_check) == (0, 0, 0, 1)
    assert {"ven_telemetry", "shard_leases", "ingest_rejects"} <= after_upgrade
    assert not {"ven_telemetry", "shard_leases"} & after_downgrade
    assert "hunter2" not in out + err
    assert f"schema {schema_name} at " in out
    assert "upgraded to the newest migration" in out
    assert "tables match the migrations" in out
    assert "downgraded to base" in out
    assert error_lines(err)[-1].startswith("ven-worker: error: migrate failed")


def test_migrate_unreachable_database_is_one_line_exit_2(capsys):
    code = cli.main(["migrate", "--database-url",
                     "postgresql://u:hunter2@127.0.0.1:1/db"])

    err = capsys.readouterr().err
    assert code == 2
    [line] = error_lines(err)
    assert line.startswith("ven-worker: error: cannot connect to PostgreSQL "
                           "at postgresql://u:***@127.0.0.1:1/db")


# -- the installed entry points ------------------------------------------


def test_console_script_and_module_entry_exit_with_the_cli_code():
    script = Path(sys.executable).parent / "ven-worker"
    env = {k: v for k, v in os.environ.items()
           if k not in {n for o in OPTIONS for n in o.env}}
    env["MAX_RECORDS"] = "0"

    results = [
        subprocess.run([str(script), "config"], capture_output=True,
                       text=True, env=env, timeout=60),
        subprocess.run([sys.executable, "-m", "worker", "config"],
                       capture_output=True, text=True, env=env, timeout=60),
    ]

    for result in results:
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr == ("ven-worker: error: MAX_RECORDS must be from "
                                 "1 to 10000, got '0'\n")
