"""DDL that SQLAlchemy metadata cannot express: the sample clean-up trigger and
the names and bounds of daily partitions. The migrations and the sink both
read these, so the two never drift apart."""

from datetime import date, datetime, time, timedelta, timezone

PARTITIONED_TABLES = ("ven_telemetry", "ven_load_samples")

# Partition children are named <parent>_pYYYYMMDD; the migrations' drift check
# skips tables with this shape, because they are created at run time.
PARTITION_SUFFIX_FORMAT = "_p%Y%m%d"

DELETE_SAMPLES_FUNCTION = "ven_telemetry_delete_samples"
DELETE_SAMPLES_TRIGGER = "ven_telemetry_delete_samples_trg"

# The API deletes readings only (for a cancelled event); their samples must go
# with them. A statement-level trigger with a transition table deletes all of a
# statement's samples in one join instead of one probe per row.
CREATE_DELETE_SAMPLES_TRIGGER = f"""
CREATE FUNCTION {DELETE_SAMPLES_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM ven_load_samples s
    USING deleted_readings d
    WHERE s.telemetry_id = d.id AND s.reading_timestamp = d."timestamp";
    RETURN NULL;
END
$$;
CREATE TRIGGER {DELETE_SAMPLES_TRIGGER}
AFTER DELETE ON ven_telemetry
REFERENCING OLD TABLE AS deleted_readings
FOR EACH STATEMENT EXECUTE FUNCTION {DELETE_SAMPLES_FUNCTION}();
"""

DROP_DELETE_SAMPLES_TRIGGER = f"""
DROP TRIGGER IF EXISTS {DELETE_SAMPLES_TRIGGER} ON ven_telemetry;
DROP FUNCTION IF EXISTS {DELETE_SAMPLES_FUNCTION}();
"""


def partition_name(parent: str, day: date) -> str:
    return parent + day.strftime(PARTITION_SUFFIX_FORMAT)


def partition_day(parent: str, name: str) -> date | None:
    """The day a partition child holds, or None when ``name`` is not one."""
    if not name.startswith(parent + "_p"):
        return None
    try:
        return datetime.strptime(
            name[len(parent):], PARTITION_SUFFIX_FORMAT
        ).date()
    except ValueError:
        return None


def is_partition_child(name: str) -> bool:
    return any(partition_day(p, name) is not None for p in PARTITIONED_TABLES)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def create_partition_sql(parent: str, day: date) -> str:
    """DDL for one day's partition. Identifiers and bounds are generated here
    from a date, never taken from a payload."""
    start, end = day_bounds(day)
    return (
        f'CREATE TABLE IF NOT EXISTS "{partition_name(parent, day)}" '
        f'PARTITION OF "{parent}" '
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )
