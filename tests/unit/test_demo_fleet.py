"""The demo's pure parts: the simulated fleet, its malformed records, the
tally, the reconciliation and the options. The decoder is the judge of what
the fleet sends: each record must decode the way the fleet says it will."""

import argparse
import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from worker import cli
from worker.config import load_settings
from worker.demo.fleet import (
    DUPLICATE,
    MALFORMED,
    PRODUCTION_KEY,
    READING,
    Fleet,
    rule_key,
)
from worker.demo.malformed import KINDS
from worker.demo.options import DemoOptions
from worker.demo.reconcile import Stored, reconcile
from worker.demo.shapes import SHAPE_CYCLE
from worker.demo.tally import Sent, Tally
from worker.demo.workers import worker_env
from worker.errors import ConfigError
from worker.records import Reading, RecordMeta, Reject, decode_record

ROUND_S = 5


def arrived_now() -> RecordMeta:
    return RecordMeta("shardId-000000000000", "1",
                      arrived_at=datetime.now(timezone.utc))


def make_fleet(vens=40, duplicates=0.01, malformed=0.01, seed=7) -> Fleet:
    start = int(time.time()) - 3600
    return Fleet(vens, start, seed, duplicates, malformed)


def sent_records(fleet: Fleet, rounds: int) -> list:
    records = [r for step in range(rounds) for r in fleet.round(step)]
    return records + fleet.finish()


# -- what the fleet sends decodes as the fleet says ------------------------


def test_readings_of_every_shape_decode_with_their_load_samples():
    fleet = make_fleet(vens=len(SHAPE_CYCLE), duplicates=0, malformed=0)
    records = sent_records(fleet, rounds=3)

    decoded = [(r, decode_record(r.data, arrived_now())) for r in records]

    assert {ven.shape for ven in fleet.vens} == set(SHAPE_CYCLE)
    assert len(records) == 3 * len(SHAPE_CYCLE)
    for record, result in decoded:
        assert isinstance(result, Reading), (record.data, result)
        assert result.ven_id == record.key
        assert len(result.samples) == record.samples > 0


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_each_malformed_kind_is_rejected_with_its_expected_reason(kind):
    fleet = make_fleet()
    ven = fleet.vens[3]

    result = decode_record(kind.make(ven, fleet.start_ts), arrived_now())

    assert isinstance(result, Reject)
    assert result.reason == kind.reason


def test_malformed_records_in_a_run_are_rejected_as_counted():
    fleet = make_fleet(vens=50, malformed=0.05)
    records = [r for r in sent_records(fleet, rounds=8)
               if r.kind == MALFORMED]

    reasons = Counter(decode_record(r.data, arrived_now()).reason.value
                      for r in records)

    assert reasons == Counter(r.reason for r in records)
    assert len(records) == 20  # 5% of 400 readings
    assert len(reasons) == len({kind.reason for kind in KINDS})


# -- the mix ---------------------------------------------------------------


def test_shares_are_exact_and_duplicates_repeat_an_earlier_reading():
    fleet = make_fleet(vens=50, duplicates=0.02, malformed=0.01)
    records = sent_records(fleet, rounds=10)

    kinds = Counter(r.kind for r in records)
    assert kinds == {READING: 500, DUPLICATE: 10, MALFORMED: 5}
    for index, record in enumerate(records):
        if record.kind == DUPLICATE:
            earlier = {r.data for r in records[:index] if r.kind == READING}
            assert record.data in earlier


def test_readings_are_unique_per_ven_and_time_and_never_in_the_future():
    fleet = make_fleet(vens=30, duplicates=0, malformed=0)
    readings = [decode_record(r.data, arrived_now())
                for r in sent_records(fleet, rounds=20)]

    keys = [(r.ven_id, r.timestamp) for r in readings]
    assert len(set(keys)) == len(keys) == 600
    last = fleet.round_ts(19) + ROUND_S
    assert max(r.timestamp for r in readings).timestamp() < last


def test_the_same_seed_sends_the_same_records():
    first = sent_records(make_fleet(seed=3), rounds=4)
    again = sent_records(make_fleet(seed=3), rounds=4)
    other = sent_records(make_fleet(seed=4), rounds=4)

    assert [r.data for r in first] == [r.data for r in again]
    assert [r.data for r in first] != [r.data for r in other]


@pytest.mark.parametrize("data, key", [
    (b'{"venId": "ven-0007", "timestamp": 1}', "ven-0007"),
    (b'{"venId": "ven-0007", "usedPowerKw": NaN}', "ven-0007"),
    (b'{"timestamp": 1}', PRODUCTION_KEY),
    (b'{"venId": 7}', PRODUCTION_KEY),
    (b'{"venId": ""}', PRODUCTION_KEY),
    (b"eyJ2ZW5JZCI6ICJ2In0=", PRODUCTION_KEY),
    (b'{"venId": "ven-00\xa0"}', PRODUCTION_KEY),
    (b"[1, 2]", PRODUCTION_KEY),
])
def test_rule_key_renders_ven_id_or_falls_back(data, key):
    assert rule_key(data) == key


# -- tally and reconciliation ----------------------------------------------


def test_tally_counts_what_was_accepted_by_kind():
    fleet = make_fleet(vens=50, duplicates=0.02, malformed=0.02)
    records = sent_records(fleet, rounds=5)
    tally = Tally()

    tally.add(records[:100])
    tally.add(records[100:])
    sent = tally.snapshot()

    assert sent.total == len(records) == 250 + 5 + 5
    assert sent.readings == 250
    assert sent.duplicates == 5
    assert sent.samples == sum(r.samples for r in records)
    assert sent.rejected == Counter(r.reason for r in records
                                    if r.kind == MALFORMED)


def sent_example() -> Sent:
    return Sent(readings=100, duplicates=2, samples=300,
                rejected=Counter(not_json=2, bad_field=1))


def stored_example(**changes) -> Stored:
    values = dict(readings=100, samples=300,
                  rejected=Counter(not_json=2, bad_field=1),
                  counted_stored=100, counted_duplicates=2,
                  counted_rejected=3)
    values.update(changes)
    return Stored(**values)


def test_reconciliation_balances_when_every_record_is_accounted_for():
    result = reconcile(sent_example(), stored_example())

    assert result.balanced
    assert result.problems == []
    assert ("  records sent 105 = stored 100 + duplicates 2 + rejected 3  ok"
            in result.lines)


def test_reconciliation_names_a_wrong_reason_and_a_missing_reading():
    stored = stored_example(
        readings=99, counted_stored=99,
        rejected=Counter(not_json=1, bad_field=1, decoder_error=1))

    result = reconcile(sent_example(), stored)

    assert not result.balanced
    assert result.problems == [
        "readings stored: expected 100, found 99",
        "rejects with reason decoder_error: expected 0, found 1",
        "rejects with reason not_json: expected 2, found 1",
        "105 records sent but 104 accounted for (stored + duplicates + "
        "rejected)",
    ]
    assert any("MISMATCH" in line for line in result.lines)


def test_reconciliation_catches_a_ledger_that_disagrees_with_the_rows():
    result = reconcile(sent_example(), stored_example(counted_stored=101,
                                                      counted_duplicates=1))

    assert result.problems == [
        "duplicates counted: expected 2, found 1",
        "the lease table counts 101 readings stored, ven_telemetry holds 100",
    ]


# -- options, CLI and the workers' environment -----------------------------


def test_options_report_every_mistake_in_one_error():
    options = DemoOptions(vens=0, speed=0, duration_s=-1,
                          malformed_percent=80, via="carrier-pigeon")

    with pytest.raises(ConfigError) as raised:
        options.check()

    assert str(raised.value).splitlines() == [
        "--vens must be 1 or more, got 0",
        "--speed must be more than 0, got 0",
        "--duration must be more than 0 seconds, got -1",
        "--malformed must be a percentage from 0 to 50, got 80",
        "--via must be one of put, mqtt, got carrier-pigeon",
    ]


def test_default_rounds_and_rate_fit_under_localstack_put_rate():
    options = DemoOptions()

    assert options.rounds == 60  # 60 s x5 = 5 simulated minutes
    assert options.readings_per_s == 200
    assert options.round_interval_s == 1.0


def test_demo_help_states_the_defaults_the_demo_uses():
    parser = cli.build_parser()
    demo = next(action for action in parser._subparsers._group_actions
                if isinstance(action, argparse._SubParsersAction))
    helps = {action.dest: action.help
             for action in demo.choices["demo"]._actions}
    defaults = DemoOptions()

    assert helps["vens"].endswith(f"(default {defaults.vens})")
    assert helps["speed"].endswith(f"(default {defaults.speed:g})")
    assert helps["duration"].endswith(f"(default {defaults.duration_s:g})")
    assert helps["duplicates"].endswith(
        f"(default {defaults.duplicate_percent:g})")
    assert helps["malformed"].endswith(
        f"(default {defaults.malformed_percent:g})")
    assert helps["via"].endswith(f"(default {defaults.via})")
    assert helps["mqtt_host"].endswith(f"(default {defaults.mqtt_host})")
    assert helps["mqtt_port"].endswith(f"(default {defaults.mqtt_port})")
    assert helps["seed"].endswith(f"(default {defaults.seed})")


def test_cli_hands_only_given_demo_options_to_the_demo(monkeypatch):
    calls = []
    monkeypatch.setattr("worker.demo.run_demo",
                        lambda settings, **given: calls.append(given) or 0)

    code = cli.main(["demo", "--database-url", "postgresql://u@h/db",
                     "--vens", "20", "--duration", "9.5", "--via", "mqtt"])

    assert code == 0
    assert calls == [{"vens": 20, "duration_s": 9.5, "via": "mqtt"}]


def test_workers_get_the_demo_settings_and_their_own_identity(monkeypatch):
    monkeypatch.delenv("RENEW_INTERVAL_S", raising=False)
    settings = load_settings(
        {"database_url": "postgresql://u@h/db", "pg_schema": "ven_demo",
         "lease_duration_s": "6", "max_records": "500"}, environ={})

    env = worker_env(settings, "http://127.0.0.1:4566", "demo-w2", "2/2",
                     9200)

    assert env["LEASE_DURATION_S"] == "6"
    assert env["MAX_RECORDS"] == "500"
    assert "RENEW_INTERVAL_S" not in env  # derived, so left to derive
    assert env["SHARDS"] == "2/2"
    assert env["WORKER_ID"] == "demo-w2"
    assert env["METRICS_PORT"] == "9200"
    assert env["PG_SCHEMA"] == "ven_demo"
    assert env["KINESIS_ENDPOINT"] == "http://127.0.0.1:4566"
    assert load_settings({}, environ=env).lease_duration_s == 6
