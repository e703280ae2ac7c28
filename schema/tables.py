"""The worker's tables: the one source of truth for migrations and the sink.

Tables carry no schema name. Every connection the project opens sets
``search_path`` to the configured PostgreSQL schema, so the same metadata
serves ``public`` and any other schema the operator picks.

Why the telemetry tables look the way they do:

- ``ven_telemetry`` and ``ven_load_samples`` are range-partitioned by day on the
  reading's time. Retention drops whole partitions of both tables together, so
  a dropped day never leaves orphaned samples behind.
- A reading is identified by (``ven_id``, ``timestamp``); that pair is the
  primary key, so storing the same reading twice is impossible.
- ``id`` comes from one sequence shared by all partitions, so it stays unique
  and the API can keep joining samples on ``telemetry_id = id``. PostgreSQL
  cannot enforce a foreign key to a partitioned table without a unique index
  on ``id`` alone, so deleting a reading removes its samples through a trigger
  (see ``schema.ddl``) instead of ``ON DELETE CASCADE``.
- No foreign keys point at tables this project does not own: an unknown
  ``event_id`` must never fail a load.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP

metadata = MetaData()

TZ = TIMESTAMP(timezone=True)

# The longest venId accepted; the decoder enforces the same bound so that a
# too-long id is a reject with a reason, never a failed COPY.
VEN_ID_MAX_LENGTH = 128

telemetry_id_seq = Sequence("ven_telemetry_id_seq", metadata=metadata)
load_sample_id_seq = Sequence("ven_load_samples_id_seq", metadata=metadata)

ven_telemetry = Table(
    "ven_telemetry",
    metadata,
    Column(
        "id",
        BigInteger,
        telemetry_id_seq,
        server_default=telemetry_id_seq.next_value(),
        nullable=False,
    ),
    Column("ven_id", String(VEN_ID_MAX_LENGTH), nullable=False),
    Column("timestamp", TZ, nullable=False),
    Column("used_power_kw", Double),
    Column("shed_power_kw", Double),
    Column("requested_reduction_kw", Double),
    Column("baseline_power_kw", Double),
    Column("event_id", Text),
    Column("battery_soc", Double),
    Column("raw_payload", JSONB, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=text("now()")),
    # Provenance: where in the stream this reading came from.
    Column("shard_id", Text),
    Column("sequence_number", Text),
    Column("sub_sequence_number", BigInteger),
    Column("arrived_at", TZ),
    PrimaryKeyConstraint("ven_id", "timestamp", name="ven_telemetry_pkey"),
    Index(
        "ven_telemetry_event_id_idx",
        "event_id",
        postgresql_where=text("event_id IS NOT NULL"),
    ),
    postgresql_partition_by="RANGE (timestamp)",
)

ven_load_samples = Table(
    "ven_load_samples",
    metadata,
    Column(
        "id",
        BigInteger,
        load_sample_id_seq,
        server_default=load_sample_id_seq.next_value(),
        nullable=False,
    ),
    Column("telemetry_id", BigInteger, nullable=False),
    # The reading's timestamp, copied here so samples partition (and are
    # dropped by retention) together with their reading.
    Column("reading_timestamp", TZ, nullable=False),
    Column("load_id", Text),
    Column("name", Text),
    Column("type", Text),
    Column("capacity_kw", Double),
    Column("current_power_kw", Double),
    Column("shed_capability_kw", Double),
    Column("enabled", Boolean),
    Column("priority", Integer),
    Column("raw_payload", JSONB, nullable=False),
    # One index serves both uniqueness and the API's join on telemetry_id;
    # a second index on id alone would slow every COPY for no reader.
    PrimaryKeyConstraint(
        "telemetry_id", "id", "reading_timestamp", name="ven_load_samples_pkey"
    ),
    postgresql_partition_by="RANGE (reading_timestamp)",
)

ven_last_seen = Table(
    "ven_last_seen",
    metadata,
    Column("ven_id", String(VEN_ID_MAX_LENGTH), primary_key=True),
    # Newest reading time ever stored for the VEN: only ever moves forward,
    # whatever order shards deliver readings in.
    Column("last_reading_at", TZ, nullable=False),
    # When the VEN was last heard from (newest arrival in the stream).
    Column("last_seen_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False, server_default=text("now()")),
)

# KCL-style lease table. The worker's fenced commit checks owner and
# lease_counter in the same transaction that stores rows and moves the
# checkpoint. lease_counter changes only when ownership changes (take, steal,
# release), never on renewal, so a batch read under one ownership can never
# commit under another.
shard_leases = Table(
    "shard_leases",
    metadata,
    Column("stream_name", Text, nullable=False),
    Column("shard_id", Text, nullable=False),
    Column("parent_shard_ids", ARRAY(Text), nullable=False,
           server_default=text("'{}'")),
    # Hash range as decimal text: 128-bit values, compared as numeric.
    Column("starting_hash_key", Text, nullable=False),
    Column("ending_hash_key", Text, nullable=False),
    Column("owner", Text),
    Column("lease_counter", BigInteger, nullable=False, server_default="0"),
    Column("lease_expires_at", TZ),
    # NULL: no checkpoint yet (start at the configured initial position).
    # 'SHARD_END': the shard is closed and fully stored.
    Column("checkpoint_sequence", Text),
    Column("checkpoint_sub_sequence", BigInteger, nullable=False,
           server_default="0"),
    # Set by an operator's reset: the next reader starts here instead of at
    # the checkpoint (AT_TIMESTAMP), then the column is cleared.
    Column("reset_to_timestamp", TZ),
    # Running totals, moved in the same transaction as the rows, so a
    # reconciliation can balance sent = stored + duplicates + rejected.
    Column("records_stored", BigInteger, nullable=False, server_default="0"),
    Column("duplicates_dropped", BigInteger, nullable=False,
           server_default="0"),
    Column("records_rejected", BigInteger, nullable=False, server_default="0"),
    Column("millis_behind_latest", BigInteger),
    Column("last_commit_at", TZ),
    Column("created_at", TZ, nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("stream_name", "shard_id", name="shard_leases_pkey"),
)

# One row per live worker process, renewed with its leases. Lease owners alone
# cannot tell the balancer about a worker that holds nothing yet.
ingest_workers = Table(
    "ingest_workers",
    metadata,
    Column("worker_id", Text, primary_key=True),
    Column("stream_name", Text, nullable=False),
    Column("shard_selector", Text, nullable=False),
    Column("started_at", TZ, nullable=False, server_default=text("now()")),
    Column("heartbeat_at", TZ, nullable=False, server_default=text("now()")),
)

ingest_rejects = Table(
    "ingest_rejects",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("stream_name", Text, nullable=False),
    Column("shard_id", Text, nullable=False),
    Column("sequence_number", Text, nullable=False),
    Column("sub_sequence_number", BigInteger),
    Column("raw_data", LargeBinary, nullable=False),
    Column("reason_code", Text, nullable=False),
    Column("error_detail", Text, nullable=False),
    Column("arrived_at", TZ),
    Column("rejected_at", TZ, nullable=False, server_default=text("now()")),
    Index("ingest_rejects_reason_idx", "reason_code", "rejected_at"),
)
