"""Operator commands: ``status``, ``scale`` and ``reset``.

Each command is a plain function of the Settings that prints for people and
returns an exit status. The data behind ``status`` (``collect_status``) is
plain dataclasses, so the demo and scripts use it without parsing text.

- ``model``: what status reports (shards, workers, totals, warnings);
- ``leases_view``: what the database says (lease rows, workers, readings);
- ``stream_view``: what Kinesis says (shards, live lag), never required;
- ``assess``: pure judgements over both (shard state, which lag, warnings);
- ``render``: tables and JSON for people and scripts.
"""
