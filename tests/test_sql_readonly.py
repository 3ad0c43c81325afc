"""`catalog sql` is read-only on both databases: every write attempt is refused, nothing changes."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from catalog import db as dbmod
from catalog import queries
from catalog.db import CatalogError

ATTEMPTS = [
    "INSERT INTO license (id, name, family, commercial_use) VALUES ('x', 'x', 'permissive', true)",
    "UPDATE model SET params_b = 1",
    "DELETE FROM model",
    "DROP TABLE published_result",
    "DROP VIEW model_facets",
    "CREATE TABLE evil (x int)",
    "SELECT 1; DELETE FROM model",
    "SELECT 1; COMMIT; DELETE FROM model",
    "WITH gone AS (DELETE FROM model RETURNING id) SELECT * FROM gone",
    "ALTER TABLE model ADD COLUMN evil int",
]
EVIL_FILE = Path(tempfile.gettempdir()) / f"catalog-evil-{uuid.uuid4().hex}"
SQLITE_ONLY = [f"ATTACH DATABASE '{EVIL_FILE}.db' AS evil", "PRAGMA journal_mode = DELETE",
               f"VACUUM INTO '{EVIL_FILE}.db'", "VACUUM", "PRAGMA query_only = OFF",
               f"/* hidden */ ATTACH DATABASE '{EVIL_FILE}.db' AS evil"]  # fmt: skip
POSTGRES_ONLY = [f"COPY model TO '{EVIL_FILE}.csv'", f"-- comment\nCOPY (SELECT 1) TO '{EVIL_FILE}.csv'",
                 "SET TRANSACTION READ WRITE", "SELECT pg_terminate_backend(pg_backend_pid())",
                 "CREATE EXTENSION IF NOT EXISTS dblink", "DO $$ BEGIN DELETE FROM model; END $$",
                 "SELECT * FROM model FOR UPDATE"]  # fmt: skip


def _fingerprint(url: str) -> tuple:
    engine = dbmod.make_engine(url)
    with engine.connect() as conn:
        fp = tuple(conn.execute(text(sql)).scalar_one() for sql in (
            "SELECT COUNT(*) FROM model", "SELECT SUM(params_b) FROM model",
            "SELECT COUNT(*) FROM published_result", "SELECT COUNT(*) FROM license",
        ))  # fmt: skip
    engine.dispose()
    return fp


def test_writes_are_refused_and_nothing_changes(seeded_url: str) -> None:
    before = _fingerprint(seeded_url)
    extra = SQLITE_ONLY if seeded_url.startswith("sqlite") else POSTGRES_ONLY
    for statement in ATTEMPTS + extra:
        with pytest.raises(CatalogError):
            queries.run_sql(dbmod.make_engine(seeded_url, read_only=True), statement)
        assert _fingerprint(seeded_url) == before, statement
        # Nothing written outside the database either (COPY TO a server file, ATTACH, VACUUM INTO).
        assert not list(EVIL_FILE.parent.glob(EVIL_FILE.name + "*")), statement


def test_a_select_on_a_view_works(seeded_url: str, builtin) -> None:  # type: ignore[no-untyped-def]
    cols, rows = queries.run_sql(dbmod.make_engine(seeded_url, read_only=True),
                                 "SELECT license_id, models FROM license_distribution ORDER BY license_id;")  # fmt: skip
    assert cols == ["license_id", "models"]
    apache = sum(1 for m in builtin.of("models") if m.license_id == "apache-2.0")
    assert dict(rows)["apache-2.0"] == apache


@pytest.mark.parametrize("sql", ["SELECT ';' AS semi", "SELECT 'a;b' -- trailing; comment", "SELECT $$x;y$$"])
def test_semicolons_inside_literals_are_not_separators(sql: str) -> None:
    assert queries.single_statement(sql) == sql.strip()
