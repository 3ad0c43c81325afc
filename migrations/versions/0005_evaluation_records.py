"""evaluation records: eval_run, sample_result, metric, and the leaderboard view

Names are a contract with BI tools and later work (docs/schema.md).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


# The latest completed run per model, dataset and metric, beside the authors' published
# figure where one exists (published_result.metric 'exact_match' matches our
# 'exact_match,strict-match' and the like).
LEADERBOARD = """
    SELECT r.model_id, r.dataset_id, m.name AS metric, m.value, m.stderr, m.n,
           r.id AS run_id, r.finished_at, r.backend,
           pr.value AS published_value, pr.source AS published_source
    FROM eval_run r
    JOIN metric m ON m.run_id = r.id
    LEFT JOIN published_result pr
           ON pr.model_id = r.model_id AND pr.dataset_id = r.dataset_id
          AND (pr.metric = m.name OR m.name LIKE pr.metric || ',%')
    WHERE r.status = 'completed' AND r.model_id IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM eval_run r2 JOIN metric m2 ON m2.run_id = r2.id AND m2.name = m.name
          WHERE r2.model_id = r.model_id AND r2.dataset_id = r.dataset_id AND r2.status = 'completed'
            AND (r2.finished_at > r.finished_at OR (r2.finished_at = r.finished_at AND r2.id > r.id)))
"""


def upgrade() -> None:
    op.create_table('eval_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('dataset_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('backend', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('preset', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('n_samples', sa.Integer(), nullable=False),
    sa.Column('samples_per_doc', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('generation_params', sa.JSON(), nullable=True),
    sa.Column('engine_args', sa.JSON(), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=True),
    sa.Column('config_fingerprint', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('package_versions', sa.JSON(), nullable=True),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('tokens_per_s', sa.Float(), nullable=True),
    sa.Column('samples_per_s', sa.Float(), nullable=True),
    sa.Column('peak_memory_gb', sa.Float(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'completed', 'failed', 'interrupted')", name='ck_eval_run_status'),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('eval_run', schema=None) as batch_op:
        batch_op.create_index('ix_eval_run_fingerprint', ['config_fingerprint'], unique=False)
        batch_op.create_index('ix_eval_run_model_dataset', ['model_id', 'dataset_id', 'status'], unique=False)

    op.create_table('metric',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('stderr', sa.Float(), nullable=True),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['eval_run.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'name')
    )
    op.create_table('sample_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('doc_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('prompt', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('completion', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('extracted', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('scores', sa.JSON(), nullable=True),
    sa.Column('tokens', sa.Integer(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('finish_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('latency_s', sa.Float(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['eval_run.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'doc_id', name='uq_sample_result_run_doc')
    )
    op.execute(f"CREATE VIEW leaderboard AS {LEADERBOARD}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS leaderboard")
    op.drop_table('sample_result')
    op.drop_table('metric')
    with op.batch_alter_table('eval_run', schema=None) as batch_op:
        batch_op.drop_index('ix_eval_run_model_dataset')
        batch_op.drop_index('ix_eval_run_fingerprint')

    op.drop_table('eval_run')
