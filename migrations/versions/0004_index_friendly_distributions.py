"""size_distribution and license_distribution count through indexes

The first definitions joined every model to every bucket (or license) and grouped the
result, which reads the whole model table (560 ms and 210 ms at 100,000 models on SQLite).
Counting each bucket with a range condition on params_b, and each license with an equality
on license_id, lets both databases answer from ix_model_params_b and
ix_model_license_context. Same names, same columns, same rows.

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


LICENSE_INDEX_COUNT = """
    SELECT l.id AS license_id, l.name, l.family AS license_family, l.commercial_use,
           (SELECT COUNT(*) FROM model m WHERE m.license_id = l.id) AS models
    FROM license l
"""

LICENSE_JOIN_AND_GROUP = """
    SELECT l.id AS license_id, l.name, l.family AS license_family, l.commercial_use,
           COUNT(m.id) AS models
    FROM license l
    LEFT JOIN model m ON m.license_id = l.id
    GROUP BY l.id, l.name, l.family, l.commercial_use
"""


def _replace(view: str, body: str) -> None:
    op.execute(f"DROP VIEW {view}")
    op.execute(f"CREATE VIEW {view} AS {body}")


def upgrade() -> None:
    _replace("size_distribution", RANGE_COUNT)
    _replace("license_distribution", LICENSE_INDEX_COUNT)


def downgrade() -> None:
    _replace("size_distribution", JOIN_AND_GROUP)
    _replace("license_distribution", LICENSE_JOIN_AND_GROUP)
