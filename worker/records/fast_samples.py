"""The quick way to build load samples, for entries that are plainly fine.

On a busy shard this runs for every load of every reading, so it is one tight
loop with inline type tests. It handles only the common, clean case and
answers None for anything else (an id given as a number, a priority given as
3.0, any wrong type, an entry orjson cannot re-encode...). The caller then
takes the careful path in ``samples``, which either builds the same tuples
or names the fault. The two must agree; a property test holds them to it.
"""

import orjson

from worker.records.model import LoadSample

# PostgreSQL ``integer`` bounds, as in ``fields.small_int``.
_INT4_MIN = -(2**31)
_INT4_MAX = 2**31 - 1

def quick_samples(entries: list[dict],
                  voltage: float | None) -> list[LoadSample] | None:
    dumps = orjson.dumps
    samples = []
    append = samples.append
    for entry in entries:
        get = entry.get

        load_id = get("loadId")
        if load_id is None:
            load_id = get("id")
        if (type(load_id) is not str or not load_id.isprintable()
                or "\ufffd" in load_id):
            return None

        name = get("name")
        kind = get("type")
        if name is not None and type(name) is not str:
            return None
        if kind is not None and type(kind) is not str:
            return None

        capacity = get("capacityKw")
        if capacity is None and voltage is not None:
            amps = get("breakerAmps")
            if type(amps) is int or type(amps) is float:
                capacity = amps * voltage / 1000
            elif amps is not None:
                return None
        elif type(capacity) is not float and capacity is not None:
            if type(capacity) is not int:
                return None
            capacity = float(capacity)

        power = get("currentPowerKw")
        if power is None:
            power = get("currentKw")
            if power is None:
                power = get("power")
        if type(power) is not float and power is not None:
            if type(power) is not int:
                return None
            power = float(power)

        shed = get("shedCapabilityKw")
        if type(shed) is not float and shed is not None:
            if type(shed) is not int:
                return None
            shed = float(shed)

        enabled = get("enabled")
        if enabled is not None and type(enabled) is not bool:
            return None
        priority = get("priority")
        if priority is not None and (
                type(priority) is not int
                or not _INT4_MIN <= priority <= _INT4_MAX):
            return None

        try:
            raw = dumps(entry).decode()
        except orjson.JSONEncodeError:
            return None  # the careful path names the entry
        append((load_id, name, kind, capacity, power, shed, enabled,
                priority, raw))
    return samples
