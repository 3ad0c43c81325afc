"""BI views: model_facets, size_distribution, license_distribution, category_summary

These names and columns are a contract with BI tools and later work (docs/schema.md).
The size bucket and every distribution are computed here, in SQL, from params_b and the
size_bucket table; nothing is stored per model or counted in Python.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

VIEWS: dict[str, str] = {
    "model_facets": """
        SELECT m.id, m.name, m.hub_id, m.family, m.architecture, m.kind,
               m.params_b, m.active_params_b, m.weights_gb,
               m.native_context, m.max_context,
               m.license_id, l.family AS license_family, l.commercial_use,
               sb.id AS size_bucket,
               pc.category_id AS primary_category, m.subcategory,
               m.quantization, m.quantized_hub_id, m.gated,
               m.preset_id,
               COALESCE(m.gpu_memory_utilization, p.gpu_memory_utilization) AS gpu_memory_utilization,
               m.max_model_len, m.evaluation_batch_size, m.priority,
               m.trust_remote_code, m.release_date
        FROM model m
        JOIN license l ON l.id = m.license_id
        JOIN preset p ON p.id = m.preset_id
        LEFT JOIN size_bucket sb
               ON m.params_b >= sb.min_params_b
              AND (sb.max_params_b IS NULL OR m.params_b < sb.max_params_b)
        LEFT JOIN category_model pc ON pc.model_id = m.id AND pc.is_primary
    """,
    "size_distribution": """
        SELECT sb.id AS size_bucket, sb.label, sb.min_params_b, sb.max_params_b, sb.sort_order,
               COUNT(m.id) AS models
        FROM size_bucket sb
        LEFT JOIN model m
               ON m.params_b >= sb.min_params_b
              AND (sb.max_params_b IS NULL OR m.params_b < sb.max_params_b)
        GROUP BY sb.id, sb.label, sb.min_params_b, sb.max_params_b, sb.sort_order
    """,
    "license_distribution": """
        SELECT l.id AS license_id, l.name, l.family AS license_family, l.commercial_use,
               COUNT(m.id) AS models
        FROM license l
        LEFT JOIN model m ON m.license_id = l.id
        GROUP BY l.id, l.name, l.family, l.commercial_use
    """,
    "category_summary": """
        SELECT c.id AS category_id, c.name, c.status, c.phase,
               (SELECT COUNT(*) FROM category_model cm WHERE cm.category_id = c.id) AS models,
               (SELECT COUNT(*) FROM category_model cm
                 WHERE cm.category_id = c.id AND cm.is_primary) AS primary_models,
               (SELECT COUNT(*) FROM category_dataset cd WHERE cd.category_id = c.id) AS datasets
        FROM category c
    """,
}


def upgrade() -> None:
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
