"""``ven-worker demo``: a simulated VEN fleet end to end, then a
reconciliation of what was sent against what was stored.

Imported lazily: ``run_demo`` loads the demo (boto3, psycopg, paho) only
when it runs, so the CLI can read the demo's defaults cheaply.
"""

from worker.demo.options import DemoOptions


def run_demo(settings, options: DemoOptions | None = None, **given) -> int:
    """Run the demo; ``given`` overrides options by name (None: default).
    Returns the exit status: 0 only when the reconciliation balances."""
    from dataclasses import replace

    from worker.demo.run import run_demo as run

    options = options or DemoOptions()
    overrides = {name: value for name, value in given.items()
                 if value is not None}
    return run(settings, replace(options, **overrides))


__all__ = ["DemoOptions", "run_demo"]
