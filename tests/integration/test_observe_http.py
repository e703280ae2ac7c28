"""/metrics and /healthz over real HTTP on an ephemeral port."""

import json
import socket
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from worker.config import load_settings
from worker.errors import ConfigError
from worker.observe import HealthState, Metrics, Observability, serve
from worker.observe.probe import main as probe_main
from worker.records.model import Reason

SHARD = "shardId-000000000000"


class FakeClock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def endpoint(clock):
    metrics = Metrics(worker_id="w-test", stream_name="s-test")
    health = HealthState(lease_stall_s=30, reader_stall_s=120, clock=clock)
    server = serve("127.0.0.1", 0, metrics, health)
    yield metrics, health, f"http://127.0.0.1:{server.port}"
    server.close()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return (answer.status, answer.headers["Content-Type"],
                    answer.read().decode())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def sample(body: str, name: str, **labels) -> float:
    """The value of one series in a text exposition."""
    for line in body.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        if series.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no {name} {labels} in the exposition")


def test_metrics_show_what_the_runtime_reported(endpoint):
    metrics, _, base = endpoint
    metrics.records_read(SHARD, 120)
    metrics.readings_stored(SHARD, 100, samples=300)
    metrics.duplicates_skipped(SHARD, 15)
    metrics.rejected(Reason.NOT_JSON, 4)
    metrics.rejected("bad_timestamp")
    metrics.batch_took(SHARD, 0.2)
    metrics.commit_took(SHARD, 0.004)
    metrics.behind_latest(SHARD, 2500)
    metrics.leases_held(3)
    metrics.lease_changed("taken", 3)
    metrics.lease_changed("stolen")
    metrics.retried("throttled")
    metrics.inflight_bytes(4096)

    status, content_type, body = get(base + "/metrics")

    assert status == 200
    assert content_type.startswith("text/plain")
    assert sample(body, "ven_worker_records_read_total", shard_id=SHARD) == 120
    assert sample(body, "ven_worker_readings_stored_total",
                  shard_id=SHARD) == 100
    assert sample(body, "ven_worker_load_samples_stored_total",
                  shard_id=SHARD) == 300
    assert sample(body, "ven_worker_duplicates_total", shard_id=SHARD) == 15
    assert sample(body, "ven_worker_rejects_total", reason="not_json") == 4
    assert sample(body, "ven_worker_rejects_total", reason="bad_timestamp") == 1
    assert sample(body, "ven_worker_rejects_total", reason="too_large") == 0
    assert sample(body, "ven_worker_batch_seconds_count", shard_id=SHARD) == 1
    assert sample(body, "ven_worker_commit_seconds_bucket", shard_id=SHARD,
                  le="0.005") == 1
    assert sample(body, "ven_worker_millis_behind_latest",
                  shard_id=SHARD) == 2500
    assert sample(body, "ven_worker_leases_held") == 3
    assert sample(body, "ven_worker_lease_changes_total", change="taken") == 3
    assert sample(body, "ven_worker_lease_changes_total", change="stolen") == 1
    assert sample(body, "ven_worker_lease_changes_total", change="lost") == 0
    assert sample(body, "ven_worker_retries_total", cause="throttled") == 1
    assert sample(body, "ven_worker_inflight_bytes") == 4096
    assert sample(body, "ven_worker_info", worker_id="w-test") == 1


def test_newest_reading_age_grows_and_a_forgotten_shard_disappears(endpoint):
    metrics, _, base = endpoint
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    metrics.newest_reading(SHARD, an_hour_ago)
    metrics.newest_reading(SHARD, an_hour_ago - timedelta(hours=5))  # older
    metrics.behind_latest(SHARD, 10)

    _, _, body = get(base + "/metrics")
    age = sample(body, "ven_worker_newest_reading_age_seconds", shard_id=SHARD)
    metrics.forget_shard(SHARD)
    _, _, after = get(base + "/metrics")

    assert 3600 <= age < 3600 + 600
    assert f'shard_id="{SHARD}"' not in "\n".join(
        line for line in after.splitlines()
        if line.startswith(("ven_worker_newest", "ven_worker_millis")))


def test_unknown_lease_change_is_refused():
    with pytest.raises(ValueError):
        Metrics().lease_changed("borrowed")


def test_two_workers_in_one_process_keep_separate_counts():
    first, second = Metrics(), Metrics()
    first.records_read(SHARD, 5)

    body = second.exposition()[0].decode()

    assert 'ven_worker_records_read_total{shard_id=' not in body


def test_healthz_is_ok_then_503_when_the_lease_loop_stalls(endpoint, clock):
    _, health, base = endpoint
    health.lease_loop_ticked()
    health.reader_started(SHARD)
    clock.now += 20
    health.lease_loop_ticked()

    healthy = get(base + "/healthz")
    clock.now += 31
    stalled = get(base + "/healthz")

    assert healthy == (200, "text/plain; charset=utf-8", "ok\n")
    status, content_type, body = stalled
    assert status == 503
    assert content_type == "application/json"
    report = json.loads(body)
    assert report["status"] == "unhealthy"
    assert report["problems"] == ["lease loop silent for 31.0s (bound 30s)"]


def test_healthz_names_the_stalled_reader(endpoint, clock):
    _, health, base = endpoint
    health.reader_started(SHARD)
    health.reader_started("shardId-000000000001")
    clock.now += 100
    health.lease_loop_ticked()
    health.reader_progressed("shardId-000000000001")
    clock.now += 25
    health.lease_loop_ticked()

    status, _, body = get(base + "/healthz")

    assert status == 503
    assert json.loads(body)["problems"] == [
        f"reader of {SHARD} silent for 125.0s (bound 120s)"]


def test_a_reader_that_stopped_is_no_longer_watched(endpoint, clock):
    _, health, base = endpoint
    health.reader_started(SHARD)
    health.reader_stopped(SHARD)
    clock.now += 500
    health.lease_loop_ticked()

    assert get(base + "/healthz")[0] == 200


def test_shutting_down_reports_unhealthy(endpoint):
    _, health, base = endpoint
    health.stopping()

    status, _, body = get(base + "/healthz")

    assert status == 503
    assert json.loads(body)["problems"] == ["shutting down"]


def test_unknown_path_is_404(endpoint):
    _, _, base = endpoint

    assert get(base + "/nothing")[0] == 404


def test_port_in_use_is_one_clear_config_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(ConfigError) as caught:
            serve("127.0.0.1", port, Metrics(), HealthState(30))

    assert f"127.0.0.1:{port} is in use" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_observability_from_settings_serves_and_closes(monkeypatch, capsys):
    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    settings = load_settings({"metrics_port": str(port),
                              "metrics_host": "127.0.0.1"}, {})

    observe = Observability.start(settings)
    try:
        observe.health.lease_loop_ticked()
        monkeypatch.setenv("METRICS_PORT", str(port))
        monkeypatch.setenv("METRICS_HOST", "127.0.0.1")
        healthy_exit = probe_main()
        observe.health.stopping()
        unhealthy_exit = probe_main()
    finally:
        observe.close()
    closed_exit = probe_main()

    assert (healthy_exit, unhealthy_exit, closed_exit) == (0, 1, 1)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ok"
    assert out[1].startswith("503: ")
    assert out[2].startswith("no answer from ")


def test_metrics_port_zero_serves_nothing():
    settings = load_settings({"metrics_port": "0"}, {})

    observe = Observability.start(settings)

    assert observe.server is None
    observe.metrics.records_read(SHARD, 1)  # still counts, for tests
    observe.close()
