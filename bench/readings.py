"""Realistic readings for the stream benchmarks, made cheaply from an index.

Reading ``i`` is a contract-1.0 payload with 8 loads (about 1.3 KB, like
bench_sink.py's), from VEN ``i % FLEET`` at ``START + 5 s * (i // FLEET)``:
every index gives a distinct (venId, timestamp), so nothing is dropped as a
duplicate, and the same index always gives the same bytes. The values vary
with ``i`` by arithmetic instead of a random generator, because the fake
endpoint makes pages on request and must not spend much CPU doing it.
"""

import orjson

# 2,000 VENs reporting every 5 s: 400 readings/s, a small real fleet.
FLEET = 2000
INTERVAL_S = 5
CIRCUITS = 8

# 2025-12-01T00:00:00Z: a fixed day, so runs are comparable and the rows
# land in a handful of daily partitions.
START_EPOCH = 1764547200


def ven_id(i: int) -> str:
    return f"ven-{i % FLEET:05d}"


def reading(i: int, at: float | None = None, circuits: int = CIRCUITS) -> bytes:
    """Reading ``i`` as a VEN publishes it; ``at`` overrides its timestamp
    (the latency benchmark stamps readings with the time they are sent)."""
    step = i // FLEET
    if at is None:
        at = START_EPOCH + INTERVAL_S * step
    used = 0.5 + (i * 7919 % 11_500) / 1000
    ven = i % FLEET
    return orjson.dumps({
        "schemaVersion": "1.0",
        "venId": ven_id(i),
        "timestamp": at,
        "usedPowerKw": used,
        "shedPowerKw": (i * 104_729 % 1000) / 1000,
        "requestedReductionKw": 1.0,
        "eventId": "evt-2025-12-01-a" if ven % 4 == 0 else None,
        "baselinePowerKw": round(used + 0.75, 3),
        "batterySoc": (i * 31 % 1000) / 1000,
        "loads": [
            {"loadId": f"load{k}", "name": f"Load {k}", "type": "hvac",
             "capacityKw": 4.0 + k,
             "currentPowerKw": ((i + k) * 613 % 6000) / 1000 - 2,
             "shedCapabilityKw": 0.6, "enabled": k % 3 != 0, "priority": k}
            for k in range(circuits)
        ],
    })
