"""trigram index for `catalog query --search`

A substring search (LIKE '%term%') over id, name, hub id and family cannot use a B-tree index
and read every row (2 s at 10^6 models). Both databases have a trigram index that answers it:
SQLite's FTS5 with the `trigram` tokenizer (a shadow table kept in step by triggers, keyed by
the model's rowid) and PostgreSQL's pg_trgm GIN index on the same expression. Where pg_trgm is
not installed the migration skips the index and search falls back to a scan.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Keep in step with catalog.queries.SEARCH_TEXT.
BODY = "lower(id || ' ' || name || ' ' || hub_id || ' ' || family)"
NEW_BODY = "lower(new.id || ' ' || new.name || ' ' || new.hub_id || ' ' || new.family)"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE model_search USING fts5(body, tokenize='trigram')")
        op.execute(f"INSERT INTO model_search (rowid, body) SELECT rowid, {BODY} FROM model")
        op.execute(f"""CREATE TRIGGER model_search_insert AFTER INSERT ON model BEGIN
                       INSERT INTO model_search (rowid, body) VALUES (new.rowid, {NEW_BODY}); END""")
        op.execute("""CREATE TRIGGER model_search_delete AFTER DELETE ON model BEGIN
                      DELETE FROM model_search WHERE rowid = old.rowid; END""")
        op.execute(f"""CREATE TRIGGER model_search_update AFTER UPDATE OF id, name, hub_id, family ON model BEGIN
                       UPDATE model_search SET body = {NEW_BODY} WHERE rowid = new.rowid; END""")
        return
    savepoint = bind.begin_nested()
    try:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        savepoint.commit()
    except Exception:  # not installed, or no right to create it: search still works, unindexed
        savepoint.rollback()
        return
    op.execute(f"CREATE INDEX ix_model_search_trgm ON model USING gin (({BODY}) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("model_search_insert", "model_search_delete", "model_search_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS model_search")
    else:
        op.execute("DROP INDEX IF EXISTS ix_model_search_trgm")
