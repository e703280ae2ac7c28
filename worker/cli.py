"""``ven-worker``: thin commands over plain functions.

Each command below is a function taking the Settings and its own options; the
parser is built from the Settings definitions and the command table at the
end. User-facing output goes to stdout, logs to stderr. A WorkerError ends the
command with one ``ven-worker: error: ...`` line per problem and exit status 2
for configuration, 1 otherwise; ``--traceback`` shows the stack.
"""

import argparse
import importlib
import inspect
import json
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from worker import __version__
from worker.config import (
    OPTIONS,
    Settings,
    ensure_database_url,
    load_settings,
    parse_timestamp,
    render_config_table,
)
from worker.errors import ConfigError, WorkerError, first_line
from worker.observe.logs import mask_secrets, setup_logging

PROG = "ven-worker"
SETTING_DEST = "setting."  # prefix keeping setting flags apart from options

log = logging.getLogger(__name__)


class CommandUnavailable(WorkerError):
    """The module behind a command is not part of this build yet."""


# -- commands ------------------------------------------------------------


def run(settings: Settings) -> int:
    """Run the worker until SIGTERM or SIGINT."""
    start = _load("worker.runtime", "run", "run")
    settings = ensure_database_url(_with_worker_id(settings))
    setup_logging(settings.log_level, settings.log_format,
                  worker_id=settings.worker_id)
    log.info("ven-worker %s starting as %s", __version__, settings.worker_id,
             extra={"settings": settings.describe()})
    return start(settings)


def migrate(settings: Settings, check: bool = False,
            downgrade: str | None = None) -> int:
    """Upgrade the worker's tables to the newest migration."""
    from alembic.util import CommandError

    from worker.db import migrate as migrations
    from worker.db.connect import connect, mask_url

    settings = ensure_database_url(settings)
    url, schema = settings.database_url, settings.pg_schema
    # Connecting first turns an unreachable server into one clear line.
    connect(url, schema).close()
    where = f"schema {schema} at {mask_url(url)}"
    try:
        if check:
            migrations.check(url, schema)
            print(f"{where}: tables match the migrations")
        elif downgrade:
            migrations.downgrade(url, schema, downgrade)
            print(f"{where}: downgraded to {downgrade}")
        else:
            migrations.upgrade(url, schema)
            print(f"{where}: upgraded to the newest migration")
    except CommandError as exc:
        raise WorkerError(f"migrate failed for {where}: "
                          f"{first_line(exc)}") from exc
    return 0


def status(settings: Settings, as_json: bool = False) -> int:
    """Show shards, leases, checkpoints and lag."""
    show = _load("worker.ops.status", "status", "status")
    return show(ensure_database_url(settings), as_json)


def scale(settings: Settings, shards: int) -> int:
    """Change the stream's open shard count (UpdateShardCount)."""
    change = _load("worker.ops.scale", "scale", "scale")
    return change(settings, shards)


def reset(settings: Settings, shard: str | None = None,
          all_shards: bool = False, to_timestamp=None,
          to_sequence: str | None = None) -> int:
    """Move shard checkpoints to a time or a sequence number, for replay."""
    if to_sequence and all_shards:
        raise ConfigError("reset --to-sequence needs --shard: a sequence "
                          "number belongs to one shard")
    move = _load("worker.ops.reset", "reset", "reset")
    return move(ensure_database_url(settings), shard=shard,
                all_shards=all_shards, to_timestamp=to_timestamp,
                to_sequence=to_sequence)


def redrive(settings: Settings, reasons: list[str] | None = None,
            shard: str | None = None, dry_run: bool = False) -> int:
    """Decode the kept rejects again and store those that now decode.

    For after a decoder fix or a raised limit (MAX_FUTURE_SKEW_S,
    MAX_RECORD_BYTES): each reject whose reading is now stored, or was
    stored already, leaves ingest_rejects and the shard's counters move
    from rejected to stored or duplicates; the rest stay as they were.
    Safe to run twice or while workers run: nothing is stored twice."""
    run_redrive = _load("worker.ops.redrive", "redrive", "redrive")
    return run_redrive(ensure_database_url(settings), reasons=reasons,
                       shard=shard, dry_run=dry_run)


def demo(settings: Settings, vens=None, speed=None, duration=None,
         duplicates=None, malformed=None, via=None, mqtt_host=None,
         mqtt_port=None, seed=None, run_dir=None) -> int:
    """Run the simulated VEN fleet end to end and reconcile what was
    stored.

    Sets up PostgreSQL (embedded unless DATABASE_URL is set), LocalStack
    and a 4-shard stream, starts two worker processes (--shards 1/2 and
    2/2), sends the fleet's readings with some duplicates and malformed
    records, and exits 0 only when sent = stored + duplicates + rejected.
    The demo's schema (PG_SCHEMA, ven_demo when that is public) is dropped
    and re-created at start, and so is the stream."""
    run_demo = _load("worker.demo", "run_demo", "demo")
    given = dict(vens=vens, speed=speed, duration_s=duration,
                 duplicate_percent=duplicates, malformed_percent=malformed,
                 via=via, mqtt_host=mqtt_host, mqtt_port=mqtt_port, seed=seed,
                 run_dir=run_dir)
    given = {name: value for name, value in given.items() if value is not None}
    # The demo resolves the embedded database itself, with its logs in the
    # run folder.
    return run_demo(settings, **given)


def config(settings: Settings, markdown: bool = False) -> int:
    """Print the effective settings (secrets masked)."""
    if markdown:
        print(render_config_table(), end="")
    else:
        print(json.dumps(settings.describe(), indent=2))
    return 0


def _with_worker_id(settings: Settings) -> Settings:
    """Settings naming this worker, so its log lines carry the id the lease
    table shows. The lease package owns how an id is made."""
    if settings.worker_id:
        return settings
    try:
        from worker.leases.identity import worker_identity
    except ImportError:
        return settings  # the runtime will pick an id itself
    return replace(settings, worker_id=worker_identity())


def _load(module_name: str, attr: str, command: str) -> Callable:
    """The function behind a command, imported only when it is used."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the command's own module missing means "not built yet"; a
        # missing dependency inside it is a real error and propagates.
        if exc.name and (module_name + ".").startswith(exc.name + "."):
            raise CommandUnavailable(
                f"{command} is not available yet ({module_name} is missing)"
            ) from exc
        raise
    function = getattr(module, attr, None)
    if function is None:
        raise CommandUnavailable(
            f"{command} is not available yet ({module_name}.{attr} is missing)")
    return function


# -- the parser ----------------------------------------------------------


@dataclass
class Command:
    function: Callable
    arguments: list[tuple[tuple, dict]] = field(default_factory=list)
    # Settings flags this command does not take (its own option has the name).
    without: frozenset = frozenset()
    exclusive: list[tuple[bool, list[str]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def summary(self) -> str:
        first_paragraph = inspect.getdoc(self.function).split("\n\n")[0]
        return " ".join(first_paragraph.split())


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return number


def _timestamp_arg(value: str):
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} {exc}") from None


# The demo's own options. None means the demo's default (written in the
# help; worker/demo/options.py holds the values and checks them).
DEMO_ARGUMENTS = [
    (("--vens",), dict(type=int, metavar="N",
                       help="simulated VENs (default 200)")),
    (("--speed",), dict(type=float, metavar="X",
                        help="time compression: simulated seconds per real "
                             "second (default 5)")),
    (("--duration",), dict(type=float, metavar="SECONDS",
                           help="real seconds of sending (default 60)")),
    (("--duplicates",), dict(type=float, metavar="PCT",
                             help="percent of readings sent again as new "
                                  "records (default 1)")),
    (("--malformed",), dict(type=float, metavar="PCT",
                            help="malformed records, as a percent of "
                                 "readings (default 1)")),
    (("--via",), dict(choices=("put", "mqtt"),
                      help="put records into Kinesis directly, or publish "
                           "on MQTT through the IoT-rule forwarder (needs a "
                           "broker) (default put)")),
    (("--mqtt-host",), dict(metavar="HOST",
                            help="MQTT broker for --via mqtt (default "
                                 "127.0.0.1)")),
    (("--mqtt-port",), dict(type=int, metavar="PORT",
                            help="MQTT broker port (default 1883)")),
    (("--seed",), dict(type=int, metavar="N",
                       help="seed of the simulated fleet (default 42)")),
    (("--run-dir",), dict(type=Path, metavar="DIR",
                          help="folder for worker logs and summary.json "
                               "(default a new folder under "
                               "~/.cache/ven-worker/demo-runs/)")),
]

COMMANDS = [
    Command(run),
    Command(migrate, [
        (("--check",), dict(action="store_true",
                            help="only verify the tables match the "
                                 "migrations; exit 1 when they do not")),
        (("--downgrade",), dict(metavar="REVISION",
                                help="downgrade to REVISION instead ('base' "
                                     "drops every table of the worker)")),
    ], exclusive=[(False, ["--check", "--downgrade"])]),
    Command(status, [
        (("--json",), dict(action="store_true", dest="as_json",
                           help="print JSON instead of a table")),
    ]),
    Command(scale, [
        (("--shards",), dict(type=_positive_int, required=True, metavar="N",
                             help="the open shard count wanted")),
    ], without=frozenset({"shards"})),
    Command(reset, [
        (("--shard",), dict(metavar="ID", help="the shard to reset")),
        (("--all",), dict(action="store_true", dest="all_shards",
                          help="reset every shard")),
        (("--to-timestamp",), dict(type=_timestamp_arg, metavar="TIME",
                                   help="restart from records that arrived "
                                        "at or after TIME (ISO-8601)")),
        (("--to-sequence",), dict(metavar="SEQ",
                                  help="restart after sequence number SEQ "
                                       "(with --shard only)")),
    ], exclusive=[(True, ["--shard", "--all"]),
                  (False, ["--to-timestamp", "--to-sequence"])]),
    Command(redrive, [
        (("--reason",), dict(action="append", dest="reasons",
                             metavar="CODE",
                             help="only rejects with this reason code "
                                  "(repeat for more)")),
        (("--shard",), dict(metavar="ID",
                            help="only rejects from this shard")),
        (("--dry-run",), dict(action="store_true",
                              help="only decode and report; store and "
                                   "delete nothing")),
    ]),
    # The demo decides each worker's shards, id and metrics port itself.
    Command(demo, DEMO_ARGUMENTS, without=frozenset(
        {"shards", "worker_id", "metrics_port"})),
    Command(config, [
        (("--markdown",), dict(action="store_true",
                               help="print the README configuration table")),
    ]),
]


def _settings_help(option) -> str:
    envs = " or ".join(option.env)
    text = f"{option.help} [env {envs}; default: {option.default_text}]"
    return text.replace("%", "%%")  # argparse formats help with %


def _add_settings(parser: argparse.ArgumentParser, without=frozenset()):
    groups = {}
    for option in OPTIONS:
        if option.name in without:
            continue
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(
                f"{option.group} settings")
        groups[option.group].add_argument(
            option.flag, dest=SETTING_DEST + option.name,
            metavar=option.metavar, help=_settings_help(option))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Kinesis to PostgreSQL ingestion worker for VEN "
                    "metering telemetry.",
        epilog="Every setting is a flag and an environment variable (shown "
               "in brackets); a flag wins over the environment. Run "
               f"'{PROG} COMMAND --help' for a command's settings.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="show the stack trace of an error")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    for command in COMMANDS:
        sub = commands.add_parser(
            command.name, help=command.summary,
            description=inspect.getdoc(command.function))
        sub.add_argument("--traceback", action="store_true",
                         default=argparse.SUPPRESS,
                         help="show the stack trace of an error")
        grouped = {flag for _, flags in command.exclusive for flag in flags}
        exclusive = {}
        for required, flags in command.exclusive:
            group = sub.add_mutually_exclusive_group(required=required)
            exclusive.update({flag: group for flag in flags})
        for flags, kwargs in command.arguments:
            target = exclusive[flags[0]] if flags[0] in grouped else sub
            target.add_argument(*flags, **kwargs)
        _add_settings(sub, command.without)
        sub.set_defaults(command=command)
    return parser


# -- entry point ---------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (| head): nothing left to say.
        # Pointing stdout at devnull keeps the exit flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except WorkerError as exc:
        _report(exc, args.traceback)
        return 2 if isinstance(exc, (ConfigError, CommandUnavailable)) else 1
    except Exception as exc:  # noqa: BLE001 -- last resort: one line, exit 1
        _report(exc, args.traceback, unexpected=True)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    command: Command = args.command
    given = vars(args)
    flags = {key[len(SETTING_DEST):]: value for key, value in given.items()
             if key.startswith(SETTING_DEST)}
    settings = load_settings(flags)
    ids = {"worker_id": settings.worker_id} if settings.worker_id else {}
    setup_logging(settings.log_level, settings.log_format, **ids)

    accepted = list(inspect.signature(command.function).parameters)[1:]
    result = command.function(settings, **{k: given[k] for k in accepted})
    # Commands return an exit status; one that returns nothing succeeded.
    return result if isinstance(result, int) else 0


def _report(exc: BaseException, show_traceback: bool,
            unexpected: bool = False) -> None:
    if show_traceback:
        text = "".join(traceback.format_exception(exc))
        print(mask_secrets(text), file=sys.stderr, end="")
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    if unexpected:
        lines = [f"unexpected {type(exc).__name__}: {lines[0]}"]
        if not show_traceback:
            lines[0] += " (run again with --traceback for details)"
    for line in lines:
        print(f"{PROG}: error: {mask_secrets(line)}", file=sys.stderr)
