"""A parsed payload -> one Reading, or ``Invalid`` naming what is wrong.

Field precedence, when a payload carries several names for one column (the
first present and not null wins; a winner of the wrong type is refused, never
skipped in favour of the next name):

    ven_id                  venId
    timestamp               timestamp > ts
    used_power_kw           usedPowerKw > power_kw > totalPower
    shed_power_kw           shedPowerKw > shed_kw
    requested_reduction_kw  requestedReductionKw
    baseline_power_kw       baselinePowerKw > base_power_kw
    event_id                eventId > active_event
    battery_soc             batterySoc
    samples                 loads > circuits (see ``samples``)

``totalPower`` is stored as sent: the field names no unit, and guessing one
would corrupt data.
"""

from schema.tables import VEN_ID_MAX_LENGTH
from worker.records.fields import identifier, is_clean_id, number
from worker.records.invalid import Invalid, type_name
from worker.records.model import Reading, Reason, RecordMeta
from worker.records.policy import DecodePolicy
from worker.records.samples import build_samples
from worker.records.timestamps import parse_timestamp, to_micros

METERING_TOPIC = "volttron/metering"

_CLIENT_ID_KEYS = ("clientId", "clientid")
_TIMESTAMP_KEYS = ("timestamp", "ts")
_SAMPLE_KEYS = ("loads", "circuits")

_USED = ("usedPowerKw", "power_kw", "totalPower")
_SHED = ("shedPowerKw", "shed_kw")
_REQUESTED = ("requestedReductionKw",)
_BASELINE = ("baselinePowerKw", "base_power_kw")
_BATTERY = ("batterySoc",)

# Keys only a metering payload carries. Without venId, a payload holding none
# of them is another topic's message, not a reading that lost its id.
_METERING_KEYS = frozenset(
    (*_TIMESTAMP_KEYS, *_SAMPLE_KEYS, *_USED, *_SHED, *_BASELINE, *_BATTERY)
)


def build_reading(payload: object, raw_payload: str, meta: RecordMeta | None,
                  policy: DecodePolicy) -> Reading:
    if type(payload) is not dict:
        raise Invalid(Reason.NOT_METERING,
                      f"payload is a JSON {type_name(payload)}, not an object")
    get = payload.get

    topic = get("topic")
    if topic is not None and topic != METERING_TOPIC:
        raise Invalid(Reason.NOT_METERING,
                      f"topic is {_shown(topic)}, not {METERING_TOPIC}")

    ven_id = _ven_id(payload)
    _check_client_id(payload, ven_id)
    timestamp = _timestamp(payload, meta, policy)

    # Spelled out rather than looped: this runs for every reading, and the
    # common case (a float under the first name) is one lookup and one test.
    used = get("usedPowerKw")
    if type(used) is not float:
        used = _first_number(get, _USED)
    shed = get("shedPowerKw")
    if type(shed) is not float:
        shed = _first_number(get, _SHED)
    requested = get("requestedReductionKw")
    if type(requested) is not float:
        requested = _first_number(get, _REQUESTED)
    baseline = get("baselinePowerKw")
    if type(baseline) is not float:
        baseline = _first_number(get, _BASELINE)
    battery = get("batterySoc")
    if type(battery) is not float:
        battery = _first_number(get, _BATTERY)

    event_id = _event_id(get)
    samples = _samples(payload, policy)

    return Reading(ven_id, timestamp, used, shed, requested, baseline,
                   event_id, battery, raw_payload, samples, meta)


def _ven_id(payload: dict) -> str:
    ven_id = payload.get("venId")
    if ven_id is None:
        if _METERING_KEYS.isdisjoint(payload):
            raise Invalid(Reason.NOT_METERING,
                          "no venId and no metering field")
        raise Invalid(Reason.MISSING_VEN_ID, "venId is missing")

    if type(ven_id) is not str:
        raise Invalid(Reason.BAD_VEN_ID,
                      f"venId must be a string, got {type_name(ven_id)}")
    if not ven_id.strip():
        raise Invalid(Reason.BAD_VEN_ID, "venId is blank")
    if len(ven_id) > VEN_ID_MAX_LENGTH:
        raise Invalid(Reason.BAD_VEN_ID,
                      f"venId has {len(ven_id)} characters, more than "
                      f"{VEN_ID_MAX_LENGTH}")
    if not is_clean_id(ven_id):
        raise Invalid(Reason.BAD_VEN_ID,
                      "venId contains a control or replacement character")
    return ven_id


def _check_client_id(payload: dict, ven_id: str) -> None:
    """The IoT rule's ``clientid()`` is the MQTT client that really sent the
    message; a venId that differs is one VEN writing as another."""
    for key in _CLIENT_ID_KEYS:
        client_id = payload.get(key)
        if client_id is not None and client_id != ven_id:
            raise Invalid(
                Reason.SPOOFED_VEN_ID,
                f"venId {_shown(ven_id)} differs from {key} {_shown(client_id)}",
            )


def _timestamp(payload: dict, meta: RecordMeta | None, policy: DecodePolicy):
    for key in _TIMESTAMP_KEYS:
        value = payload.get(key)
        if value is not None:
            break
    else:
        raise Invalid(Reason.MISSING_TIMESTAMP, "timestamp (or ts) is missing")

    arrived = meta.arrived_at if meta is not None else None
    reference = arrived if arrived is not None else policy.now()
    return parse_timestamp(value, key, policy.min_us,
                           to_micros(reference) + policy.skew_us)


def _first_number(get, names: tuple[str, ...]) -> float | None:
    for name in names:
        value = get(name)
        if value is not None:
            return value if type(value) is float else number(value, name)
    return None


def _event_id(get) -> str | None:
    for name in ("eventId", "active_event"):
        value = get(name)
        if value is not None:
            return identifier(value, name)
    return None


def _samples(payload: dict, policy: DecodePolicy) -> list:
    for key in _SAMPLE_KEYS:
        entries = payload.get(key)
        if entries is not None:
            break
    else:
        return []

    voltage = payload.get("panelVoltage")
    if type(voltage) is not float:
        voltage = number(voltage, "panelVoltage")
    return build_samples(entries, key, voltage, policy.max_loads_per_reading)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
