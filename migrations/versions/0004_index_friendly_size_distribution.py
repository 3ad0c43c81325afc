"""size_distribution counts each bucket with an index range scan

The first definition joined every model to every bucket and grouped the result, which reads
the whole model table (560 ms at 100,000 models on SQLite). Counting each bucket with a
range condition on params_b lets both databases answer from ix_model_params_b. Same name,
same columns, same rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RANGE_COUNT = """
    SELECT sb.id AS size_bucket, sb.label, sb.min_params_b, sb.max_params_b, sb.sort_order,
           (SELECT COUNT(*) FROM model m
             WHERE m.params_b >= sb.min_params_b
               AND m.params_b < COALESCE(sb.max_params_b, 1e300)) AS models
    FROM size_bucket sb
"""

JOIN_AND_GROUP = """
    SELECT sb.id AS size_bucket, sb.label, sb.min_params_b, sb.max_params_b, sb.sort_order,
           COUNT(m.id) AS models
    FROM size_bucket sb
    LEFT JOIN model m
           ON m.params_b >= sb.min_params_b
          AND (sb.max_params_b IS NULL OR m.params_b < sb.max_params_b)
    GROUP BY sb.id, sb.label, sb.min_params_b, sb.max_params_b, sb.sort_order
"""


def upgrade() -> None:
    op.execute("DROP VIEW size_distribution")
    op.execute(f"CREATE VIEW size_distribution AS {RANGE_COUNT}")


def downgrade() -> None:
    op.execute("DROP VIEW size_distribution")
    op.execute(f"CREATE VIEW size_distribution AS {JOIN_AND_GROUP}")
