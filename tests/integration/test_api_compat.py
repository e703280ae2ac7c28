"""The platform API's reads, asked the way the API asks them today, against
rows the sink stored: same tables, same columns, same meanings."""

from datetime import timedelta

import pytest

from sink_support import (  # noqa: F401  (sink is a fixture)
    T0,
    add_lease,
    batch,
    count,
    meta,
    reading,
    sample,
    sink,
)

TELEMETRY_READ = (
    "t.id, t.ven_id, t.timestamp, t.used_power_kw, t.shed_power_kw, "
    "t.requested_reduction_kw, t.event_id, t.battery_soc, t.raw_payload, "
    "t.created_at"
)
SAMPLES_READ = (
    "SELECT id, telemetry_id, load_id, name, type, capacity_kw, "
    "current_power_kw, shed_capability_kw, enabled, priority, raw_payload "
    "FROM ven_load_samples WHERE telemetry_id = %s ORDER BY load_id"
)
DAY = 86400


def _circuits(power: float) -> list[tuple]:
    return [sample("hvac1", current_power_kw=power),
            sample("pv1", current_power_kw=-power, type="pv")]


@pytest.fixture
def stored(db, sink):
    """Three VENs' readings over two days, stored in two batches whose order
    is not the readings' order."""
    lease = add_lease(db)
    first = [
        reading("ven-a", 60, samples=_circuits(1.0), event_id="evt-1"),
        reading("ven-a", DAY + 5, samples=_circuits(4.0), event_id=None),
        reading("ven-b", 30, samples=_circuits(2.0), event_id="evt-1"),
    ]
    second = [
        reading("ven-a", 0, samples=_circuits(0.5), event_id="evt-1",
                record=meta("2")),
        reading("ven-a", 120, samples=_circuits(1.5), event_id="evt-2",
                record=meta("2")),
        reading("ven-c", 10, samples=[], event_id=None, record=meta("2")),
    ]
    assert sink.write(batch(lease, first, seq="1")).stored == 3
    assert sink.write(batch(lease, second, seq="2")).stored == 3
    return first + second


def _samples(db, telemetry_id: int) -> list[tuple]:
    return db.execute(SAMPLES_READ, (telemetry_id,)).fetchall()


def test_latest_reading_of_each_ven_with_samples(db, stored):
    rows = db.execute(
        f"SELECT {TELEMETRY_READ} FROM ven_telemetry t "
        "JOIN (SELECT ven_id, max(timestamp) AS latest FROM ven_telemetry "
        "      GROUP BY ven_id) m "
        "ON t.ven_id = m.ven_id AND t.timestamp = m.latest "
        "ORDER BY t.ven_id"
    ).fetchall()

    assert [(r[1], r[2]) for r in rows] == [
        ("ven-a", T0 + timedelta(seconds=DAY + 5)),
        ("ven-b", T0 + timedelta(seconds=30)),
        ("ven-c", T0 + timedelta(seconds=10)),
    ]
    latest_a = rows[0]
    assert latest_a[3:8] == (3.18, 0.75, 1.0, None, 0.61)
    assert latest_a[8]["venId"] == "ven-a"
    assert latest_a[9] is not None
    samples = _samples(db, latest_a[0])
    assert [(s[1], s[2], s[6]) for s in samples] == [
        (latest_a[0], "hvac1", 4.0),
        (latest_a[0], "pv1", -4.0),
    ]
    assert samples[0][3:] == ("HVAC1", "hvac", 4.0, 4.0, 0.5, True, 2,
                              {"loadId": "hvac1", "priority": 2})
    assert _samples(db, rows[2][0]) == []


def test_latest_reading_for_a_set_of_vens(db, stored):
    rows = db.execute(
        "SELECT t.ven_id, t.timestamp FROM ven_telemetry t "
        "JOIN (SELECT ven_id, max(timestamp) AS latest FROM ven_telemetry "
        "      WHERE ven_id = ANY(%s) GROUP BY ven_id) m "
        "ON t.ven_id = m.ven_id AND t.timestamp = m.latest "
        "ORDER BY t.ven_id",
        (["ven-b", "ven-c", "ven-unknown"],),
    ).fetchall()

    assert rows == [("ven-b", T0 + timedelta(seconds=30)),
                    ("ven-c", T0 + timedelta(seconds=10))]


def test_window_of_one_ven_oldest_first_with_samples(db, stored):
    rows = db.execute(
        f"SELECT {TELEMETRY_READ} FROM ven_telemetry t "
        "WHERE t.ven_id = %s AND t.timestamp >= %s AND t.timestamp <= %s "
        "ORDER BY t.timestamp",
        ("ven-a", T0, T0 + timedelta(seconds=120)),
    ).fetchall()

    assert [r[2] for r in rows] == [
        T0, T0 + timedelta(seconds=60), T0 + timedelta(seconds=120)
    ]
    assert [r[6] for r in rows] == ["evt-1", "evt-1", "evt-2"]
    assert [[s[6] for s in _samples(db, r[0])] for r in rows] == [
        [0.5, -0.5], [1.0, -1.0], [1.5, -1.5]
    ]


def test_history_of_one_load_with_limit(db, stored):
    rows = db.execute(
        "SELECT t.timestamp, s.load_id, s.current_power_kw "
        "FROM ven_load_samples s "
        "JOIN ven_telemetry t ON s.telemetry_id = t.id "
        "WHERE t.ven_id = %s AND s.load_id = %s "
        "AND t.timestamp >= %s AND t.timestamp <= %s "
        "ORDER BY t.timestamp LIMIT %s",
        ("ven-a", "pv1", T0, T0 + timedelta(days=2), 3),
    ).fetchall()

    assert rows == [
        (T0, "pv1", -0.5),
        (T0 + timedelta(seconds=60), "pv1", -1.0),
        (T0 + timedelta(seconds=120), "pv1", -1.5),
    ]


def test_history_of_every_load_of_a_ven_without_window(db, stored):
    rows = db.execute(
        "SELECT s.load_id FROM ven_load_samples s "
        "JOIN ven_telemetry t ON s.telemetry_id = t.id "
        "WHERE t.ven_id = %s ORDER BY t.timestamp, s.load_id LIMIT %s",
        ("ven-b", 100),
    ).fetchall()

    assert rows == [("hvac1",), ("pv1",)]


def test_deleting_an_events_readings_removes_their_samples(db, stored):
    doomed = db.execute(
        "SELECT id FROM ven_telemetry WHERE event_id = %s", ("evt-1",)
    ).fetchall()
    assert len(doomed) == 3

    db.execute("DELETE FROM ven_telemetry WHERE event_id = %s", ("evt-1",))

    assert db.execute(
        "SELECT count(*) FROM ven_load_samples WHERE telemetry_id = ANY(%s)",
        ([i for (i,) in doomed],),
    ).fetchone() == (0,)
    assert count(db, "ven_telemetry") == 3
    # The other readings keep their samples: ven-a's two, ven-c has none.
    assert count(db, "ven_load_samples") == 4
