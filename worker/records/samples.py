"""``loads[]`` or ``circuits[]`` -> load-sample tuples in SAMPLE_COLUMNS order.

One mapping serves all three VEN generations; where an entry carries several
names for one column, the first in this order wins:

    load_id           loadId > id            (a JSON integer is kept as text)
    name, type        name, type
    capacity_kw       capacityKw > breakerAmps x panelVoltage / 1000
    current_power_kw  currentPowerKw > currentKw > power
    shed_capability_kw shedCapabilityKw
    enabled           enabled
    priority          priority
    raw_payload       the entry itself, as JSON text

Other keys (``critical``, ``currentAmps``...) live only in raw_payload.
"""

import orjson

from worker.records.fields import (
    flag,
    identifier,
    is_clean_id,
    number,
    small_int,
    text,
)
from worker.records.fast_samples import quick_samples
from worker.records.invalid import Invalid, type_name
from worker.records.model import LoadSample, Reason

_DICT = frozenset((dict,))


def build_samples(entries: object, key: str, voltage: float | None,
                  limit: int) -> list[LoadSample]:
    """Samples for the array at ``key``; ``voltage`` is the panel's, used for
    circuits that give breakerAmps instead of capacityKw."""
    if type(entries) is not list:
        raise Invalid(Reason.BAD_FIELD,
                      f"{key} must be an array, got {type_name(entries)}")
    if len(entries) > limit:
        raise Invalid(Reason.TOO_MANY_LOADS,
                      f"{key} holds {len(entries)} entries, more than {limit}")

    if not entries:
        return []
    if set(map(type, entries)) == _DICT:
        samples = quick_samples(entries, voltage)
        if samples is not None:
            return samples
    return careful_samples(entries, key, voltage)


def careful_samples(entries: list, key: str,
                    voltage: float | None) -> list[LoadSample]:
    """The careful path: entry by entry, naming the first fault found."""
    samples = []
    append = samples.append
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            raise Invalid(
                Reason.BAD_FIELD,
                f"{key}[{index}] must be an object, got {type_name(entry)}",
            )
        raw = _entry_json(entry, key, index)
        try:
            append(_sample(entry, voltage, raw))
        except Invalid as exc:
            raise Invalid(exc.reason, f"{key}[{index}].{exc.detail}") from None
    return samples


def _sample(entry: dict, voltage: float | None, raw: str) -> LoadSample:
    get = entry.get

    load_id = get("loadId")
    if load_id is None:
        load_id = identifier(get("id"), "id")
    elif type(load_id) is not str or not is_clean_id(load_id):
        load_id = identifier(load_id, "loadId")

    name = get("name")
    if type(name) is not str:
        name = text(name, "name")
    kind = get("type")
    if type(kind) is not str:
        kind = text(kind, "type")

    capacity = get("capacityKw")
    if type(capacity) is not float:
        capacity = number(capacity, "capacityKw")
    if capacity is None and voltage is not None:
        amps = number(get("breakerAmps"), "breakerAmps")
        if amps is not None:
            capacity = amps * voltage / 1000

    power = _current_power(get)

    shed = get("shedCapabilityKw")
    if type(shed) is not float:
        shed = number(shed, "shedCapabilityKw")

    enabled = get("enabled")
    if type(enabled) is not bool:
        enabled = flag(enabled, "enabled")
    priority = small_int(get("priority"), "priority")
    return (load_id, name, kind, capacity, power, shed, enabled, priority, raw)


def _current_power(get) -> float | None:
    for name in ("currentPowerKw", "currentKw", "power"):
        value = get(name)
        if value is not None:
            return value if type(value) is float else number(value, name)
    return None


def _entry_json(entry: dict, key: str, index: int) -> str:
    try:
        return orjson.dumps(entry).decode()
    except orjson.JSONEncodeError:
        # orjson writes at most 255 levels; parsing allowed 1024.
        raise Invalid(
            Reason.TOO_DEEP,
            f"{key}[{index}] nests too deep to store as its own JSON",
        ) from None
