"""run queue: eval_run.worker_id, heartbeat_at, claimed_at, attempts

``evaluator enqueue`` writes queued runs; ``evaluator worker`` claims them, heartbeats while it
runs one, and returns runs whose worker died to the queue (evaluator/queue.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('eval_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))


def _leaderboard_sql() -> str:
    """The leaderboard view's definition, from the migration that created it."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_m0005", Path(__file__).with_name("0005_evaluation_records.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.LEADERBOARD)


def downgrade() -> None:
    # SQLite drops columns by copying the table, which a view over it forbids: the leaderboard
    # view is dropped and recreated around the copy (it does not use these columns).
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        op.execute("DROP VIEW IF EXISTS leaderboard")
    with op.batch_alter_table('eval_run', schema=None) as batch_op:
        batch_op.drop_column('attempts')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('worker_id')
    if sqlite:
        op.execute(f"CREATE VIEW leaderboard AS {_leaderboard_sql()}")
