"""initial tables: telemetry, load samples, last seen, leases, workers, rejects

Written from schema/ by autogenerate, plus what autogenerate cannot see: the
sequences behind the ids and the trigger that deletes a reading's samples
with it. Daily partitions are not created here; the sink creates them ahead
of time.

Revision ID: 0001
Revises: 
Create Date: 2026-12-03 16:40:49.452185
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from schema.ddl import CREATE_DELETE_SAMPLES_TRIGGER, DROP_DELETE_SAMPLES_TRIGGER

SEQUENCES = ("ven_telemetry_id_seq", "ven_load_samples_id_seq")

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in SEQUENCES:
        op.execute(sa.schema.CreateSequence(sa.Sequence(name)))
    op.create_table('ingest_rejects',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('stream_name', sa.Text(), nullable=False),
    sa.Column('shard_id', sa.Text(), nullable=False),
    sa.Column('sequence_number', sa.Text(), nullable=False),
    sa.Column('sub_sequence_number', sa.BigInteger(), nullable=True),
    sa.Column('raw_data', sa.LargeBinary(), nullable=False),
    sa.Column('reason_code', sa.Text(), nullable=False),
    sa.Column('error_detail', sa.Text(), nullable=False),
    sa.Column('arrived_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('rejected_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ingest_rejects_reason_idx', 'ingest_rejects', ['reason_code', 'rejected_at'], unique=False)
    op.create_table('ingest_workers',
    sa.Column('worker_id', sa.Text(), nullable=False),
    sa.Column('stream_name', sa.Text(), nullable=False),
    sa.Column('shard_selector', sa.Text(), nullable=False),
    sa.Column('started_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('heartbeat_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('worker_id')
    )
    op.create_table('shard_leases',
    sa.Column('stream_name', sa.Text(), nullable=False),
    sa.Column('shard_id', sa.Text(), nullable=False),
    sa.Column('parent_shard_ids', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('starting_hash_key', sa.Text(), nullable=False),
    sa.Column('ending_hash_key', sa.Text(), nullable=False),
    sa.Column('owner', sa.Text(), nullable=True),
    sa.Column('lease_counter', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lease_expires_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('checkpoint_sequence', sa.Text(), nullable=True),
    sa.Column('checkpoint_sub_sequence', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('reset_to_timestamp', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('records_stored', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('duplicates_dropped', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('records_rejected', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('millis_behind_latest', sa.BigInteger(), nullable=True),
    sa.Column('last_commit_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('stream_name', 'shard_id', name='shard_leases_pkey')
    )
    op.create_table('ven_last_seen',
    sa.Column('ven_id', sa.String(length=128), nullable=False),
    sa.Column('last_reading_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('last_seen_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('updated_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('ven_id')
    )
    op.create_table('ven_load_samples',
    sa.Column('id', sa.BigInteger(), server_default=sa.text("nextval('ven_load_samples_id_seq')"), nullable=False),
    sa.Column('telemetry_id', sa.BigInteger(), nullable=False),
    sa.Column('reading_timestamp', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('load_id', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('type', sa.Text(), nullable=True),
    sa.Column('capacity_kw', sa.Double(), nullable=True),
    sa.Column('current_power_kw', sa.Double(), nullable=True),
    sa.Column('shed_capability_kw', sa.Double(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=True),
    sa.Column('raw_payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('telemetry_id', 'id', 'reading_timestamp', name='ven_load_samples_pkey'),
    postgresql_partition_by='RANGE (reading_timestamp)'
    )
    op.create_table('ven_telemetry',
    sa.Column('id', sa.BigInteger(), server_default=sa.text("nextval('ven_telemetry_id_seq')"), nullable=False),
    sa.Column('ven_id', sa.String(length=128), nullable=False),
    sa.Column('timestamp', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('used_power_kw', sa.Double(), nullable=True),
    sa.Column('shed_power_kw', sa.Double(), nullable=True),
    sa.Column('requested_reduction_kw', sa.Double(), nullable=True),
    sa.Column('baseline_power_kw', sa.Double(), nullable=True),
    sa.Column('event_id', sa.Text(), nullable=True),
    sa.Column('battery_soc', sa.Double(), nullable=True),
    sa.Column('raw_payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('shard_id', sa.Text(), nullable=True),
    sa.Column('sequence_number', sa.Text(), nullable=True),
    sa.Column('sub_sequence_number', sa.BigInteger(), nullable=True),
    sa.Column('arrived_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('ven_id', 'timestamp', name='ven_telemetry_pkey'),
    postgresql_partition_by='RANGE (timestamp)'
    )
    op.create_index('ven_telemetry_event_id_idx', 'ven_telemetry', ['event_id'], unique=False, postgresql_where=sa.text('event_id IS NOT NULL'))
    op.execute(CREATE_DELETE_SAMPLES_TRIGGER)


def downgrade() -> None:
    op.execute(DROP_DELETE_SAMPLES_TRIGGER)
    op.drop_index('ven_telemetry_event_id_idx', table_name='ven_telemetry', postgresql_where=sa.text('event_id IS NOT NULL'))
    op.drop_table('ven_telemetry')
    op.drop_table('ven_load_samples')
    op.drop_table('ven_last_seen')
    op.drop_table('shard_leases')
    op.drop_table('ingest_workers')
    op.drop_index('ingest_rejects_reason_idx', table_name='ingest_rejects')
    op.drop_table('ingest_rejects')
    for name in SEQUENCES:
        op.execute(sa.schema.DropSequence(sa.Sequence(name)))
