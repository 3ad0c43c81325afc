"""sort by context with an index that also orders the ties

`catalog query --sort -max_context --limit N` orders by (max_context, id) in one direction;
an index on max_context alone leaves PostgreSQL sorting every model to break ties
(70 ms at 10^6). An index on (max_context, id) serves the whole ORDER BY, forwards or
backwards, and still serves every filter the single-column index did.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model") as batch_op:
        batch_op.drop_index("ix_model_max_context")
        batch_op.create_index("ix_model_max_context_id", ["max_context", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model") as batch_op:
        batch_op.drop_index("ix_model_max_context_id")
        batch_op.create_index("ix_model_max_context", ["max_context"], unique=False)
