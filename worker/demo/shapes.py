"""The payloads simulated VENs publish, one maker per generation of VEN
software in the field. Field names and layout follow the metering contract
and the older shapes still in service; every value is invented.

A maker returns the payload as a dict and the number of load samples the
worker must store for it.
"""

import math
import random
from dataclasses import dataclass

METERING_TOPIC = "volttron/metering"

CONTRACT = "contract-1.0"  # readings plus loads[]
PANEL = "panel"            # circuits[] with breaker data and legacy keys
EARLY = "early"            # totalPower and circuits[] of {id, power}
ENRICHED = "rule-enriched"  # contract plus the rule's topic/clientId/time

# Out of every 20 VENs: most run the current contract, the rest the older
# generations, so each shape is in every run with a fleet of 20 or more.
SHAPE_CYCLE = (CONTRACT,) * 14 + (PANEL,) * 3 + (EARLY,) * 2 + (ENRICHED,)

PANEL_VOLTAGE = 240
PANEL_AMPERAGE = 200

# A demand-response event runs every other 10 simulated minutes for one VEN
# in three, so eventId, shed and requested reduction take real values too.
EVENT_PERIOD_S = 600
EVENT_REDUCTION_KW = 1.0


@dataclass(frozen=True, slots=True)
class Load:
    load_id: str
    name: str
    type: str
    capacity_kw: float
    share: float  # of the VEN's power; negative for generation (PV)
    shed_kw: float
    priority: int


@dataclass(frozen=True, slots=True)
class Ven:
    ven_id: str
    shape: str
    base_kw: float
    loads: tuple[Load, ...]
    offset_s: int  # seconds past each round's start at which it reports
    in_events: bool


HOME_LOADS = (
    Load("hvac1", "HVAC", "hvac", 4.0, 0.45, 0.6, 1),
    Load("wh1", "Water Heater", "water_heater", 4.5, 0.25, 1.5, 2),
    Load("ev1", "EV Charger", "ev", 11.5, 0.30, 3.0, 3),
    Load("pv1", "Rooftop PV", "pv", 6.0, -0.35, 0.0, 5),
)

# (id, name, breaker amps, share of the panel's power, critical)
PANEL_CIRCUITS = (
    ("hvac1", "HVAC", 30, 0.21, True),
    ("heater1", "Water Heater", 30, 0.21, False),
    ("dryer1", "Dryer", 30, 0.21, False),
    ("range1", "Electric Range", 40, 0.28, False),
    ("fridge1", "Refrigerator", 15, 0.09, True),
)

EARLY_CIRCUITS = (("c1", 0.25), ("c2", 0.75))


def make_ven(index: int, rng: random.Random) -> Ven:
    shape = SHAPE_CYCLE[index % len(SHAPE_CYCLE)]
    if shape == PANEL:
        ven_id, base = f"ven-panel-{index:04d}", rng.uniform(12.0, 24.0)
    elif shape == EARLY:
        ven_id, base = f"ven-e{index:04d}", rng.uniform(3.0, 6.0)
    else:
        ven_id, base = f"ven-{index:04d}", rng.uniform(1.5, 5.0)
    # Every home has HVAC; the other loads come and go between homes.
    loads = HOME_LOADS[:1] + tuple(
        load for load in HOME_LOADS[1:] if rng.random() < 0.6)
    return Ven(ven_id, shape, round(base, 2), loads,
               offset_s=index % 5, in_events=index % 3 == 0)


def payload(ven: Ven, step: int, ts: int, rng: random.Random):
    """The reading ``ven`` sends at its ``step``-th report, time ``ts``
    (epoch seconds): (payload dict, load samples it must yield)."""
    maker = _MAKERS[ven.shape]
    return maker(ven, step, ts, rng)


def _power(ven: Ven, ts: int, rng: random.Random) -> float:
    # A daily curve peaking in the evening, plus noise.
    day = (ts % 86_400) / 86_400
    curve = 1.0 + 0.3 * math.sin(2 * math.pi * (day - 0.45))
    return round(ven.base_kw * curve * rng.uniform(0.9, 1.1), 3)


def _event(ven: Ven, ts: int) -> str | None:
    window = ts // EVENT_PERIOD_S
    if ven.in_events and window % 2 == 1:
        return f"evt-demo-{window}"
    return None


def _contract(ven: Ven, step: int, ts: int, rng: random.Random):
    used = _power(ven, ts, rng)
    event = _event(ven, ts)
    requested = EVENT_REDUCTION_KW if event else 0.0
    shed = round(requested * rng.uniform(0.6, 1.0), 3) if event else 0.0
    loads = [{
        "loadId": load.load_id, "name": load.name, "type": load.type,
        "capacityKw": load.capacity_kw,
        "currentPowerKw": round(used * load.share, 3),
        "shedCapabilityKw": load.shed_kw,
        "enabled": load.type != "ev" or step % 4 != 0,
        "priority": load.priority,
    } for load in ven.loads]
    body = {
        "schemaVersion": "1.0", "venId": ven.ven_id, "timestamp": ts,
        "usedPowerKw": used, "shedPowerKw": shed,
        "requestedReductionKw": requested, "eventId": event,
        "baselinePowerKw": round(used + shed, 3),
        "batterySoc": round(0.2 + 0.7 * rng.random(), 2),
        "loads": loads, "power_kw": used,
    }
    return body, len(loads)


def _enriched(ven: Ven, step: int, ts: int, rng: random.Random):
    body, samples = _contract(ven, step, ts, rng)
    # What a rule selecting topic(), clientid() and timestamp() adds.
    body.update(topic=METERING_TOPIC, clientId=ven.ven_id,
                receivedAt=ts * 1000 + rng.randrange(50, 900))
    return body, samples


def _panel(ven: Ven, step: int, ts: int, rng: random.Random):
    used = _power(ven, ts, rng)
    event = _event(ven, ts)
    shed = round(EVENT_REDUCTION_KW * rng.uniform(0.6, 1.0), 3) if event else 0.0
    circuits = []
    for circuit_id, name, breaker, share, critical in PANEL_CIRCUITS:
        kw = round(used * share, 2)
        circuits.append({
            "id": circuit_id, "name": name, "breakerAmps": breaker,
            "currentKw": kw, "currentAmps": round(kw * 1000 / PANEL_VOLTAGE, 2),
            "enabled": True, "critical": critical,
        })
    max_kw = PANEL_AMPERAGE * PANEL_VOLTAGE / 1000
    body = {
        "venId": ven.ven_id, "timestamp": ts, "usedPowerKw": used,
        "shedPowerKw": shed,
        "requestedReductionKw": EVENT_REDUCTION_KW if event else 0.0,
        "eventId": event, "baselinePowerKw": round(used + shed, 3),
        "message_num": step + 1,
        "panelAmperageRating": PANEL_AMPERAGE, "panelVoltage": PANEL_VOLTAGE,
        "panelMaxKw": max_kw,
        "currentAmps": round(used * 1000 / PANEL_VOLTAGE, 2),
        "panelUtilizationPercent": round(100 * used / max_kw, 1),
        "circuits": circuits, "power_kw": used, "shed_kw": shed,
        "base_power_kw": round(used + shed, 3), "ts": ts,
        "active_event": event,
    }
    return body, len(circuits)


def _early(ven: Ven, step: int, ts: int, rng: random.Random):
    # Early software reports watts without saying so, and fractional epoch
    # seconds; the worker stores the number as sent.
    watts = round(_power(ven, ts, rng) * 1000, 1)
    circuits = [{"id": circuit_id, "power": round(watts * share, 1)}
                for circuit_id, share in EARLY_CIRCUITS]
    body = {"venId": ven.ven_id, "timestamp": ts + 0.25,
            "totalPower": watts, "circuits": circuits}
    return body, len(circuits)


def not_metering(ts: int) -> dict:
    """A demand-response event message from another topic that reached the
    same stream: no reading in it."""
    return {"event_id": f"evt-demo-{ts // EVENT_PERIOD_S}", "op": "event",
            "requestedReductionKw": EVENT_REDUCTION_KW, "start_ts": ts,
            "duration_s": EVENT_PERIOD_S}


_MAKERS = {CONTRACT: _contract, PANEL: _panel, EARLY: _early,
           ENRICHED: _enriched}
