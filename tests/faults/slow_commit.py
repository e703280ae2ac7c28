"""Widening the window between a batch's load and its commit, from the
database side (the worker has no test hooks, and needs none).

Two triggers on ``ven_telemetry`` in the test's schema, each sleeping once
per transaction:

- ``faults_slow_load``: a statement trigger, after the COPY of readings. A
  worker killed during it never sends COMMIT: the server rolls the whole
  batch back once it finds the client gone.
- ``faults_slow_commit``: a deferred constraint trigger, which runs inside
  COMMIT, after the checkpoint was moved. A worker killed during it leaves a
  COMMIT the server completes: the batch is stored although the worker
  never heard so.

``pg_stat_activity`` shows a session in either window as waiting on
``PgSleep``, with the COPY or the COMMIT as its query.
"""

import psycopg

LOAD = "load"
COMMIT = "commit"

_FUNCTION = """
CREATE FUNCTION faults_sleep_once() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    flag text := 'faults.slept_' || TG_ARGV[0];
BEGIN
    IF current_setting(flag, true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config(flag, 'yes', true);
        PERFORM pg_sleep(TG_ARGV[1]::float8);
    END IF;
    RETURN NULL;
END $$
"""

_TRIGGERS = """
CREATE TRIGGER faults_slow_load AFTER INSERT ON ven_telemetry
    FOR EACH STATEMENT EXECUTE FUNCTION faults_sleep_once('load', '{load}');
CREATE CONSTRAINT TRIGGER faults_slow_commit AFTER INSERT ON ven_telemetry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION faults_sleep_once('commit', '{commit}');
"""


def install(pg_url: str, schema: str, load_s: float, commit_s: float) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        conn.execute(_FUNCTION)
        conn.execute(_TRIGGERS.format(load=load_s, commit=commit_s))


def window_of(states: list[tuple]) -> str | None:
    """Which window a worker's sessions are in, from ``backend_states``."""
    for state, wait_event, query in states:
        if state != "active" or wait_event != "PgSleep":
            continue
        if (query or "").lstrip().upper().startswith("COMMIT"):
            return COMMIT
        return LOAD
    return None
