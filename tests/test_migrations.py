"""Alembic owns the schema: up, down to base, up again; and models == migrations."""

from __future__ import annotations

from sqlalchemy import inspect

from catalog import db as dbmod
from catalog.schema import metadata

VIEWS = {"model_facets", "size_distribution", "license_distribution", "category_summary", "model_memory",
         "leaderboard"}
# Tables created after revision 0001 (0003: gpu; 0005: evaluation records).
LATER_TABLES = {"gpu", "eval_run", "sample_result", "metric"}


def _objects(url: str) -> tuple[set[str], set[str]]:
    engine = dbmod.make_engine(url)
    insp = inspect(engine)
    tables = {t for t in insp.get_table_names() if t != "alembic_version" and not dbmod.is_search_object(t)}
    views = set(insp.get_view_names())
    engine.dispose()
    return tables, views


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    dbmod.upgrade(db_url)
    tables, views = _objects(db_url)
    assert tables == set(metadata.tables)
    assert VIEWS <= views
    assert dbmod.current_revision(db_url) == dbmod.head_revision()

    dbmod.downgrade(db_url, "base")
    assert _objects(db_url) == (set(), set())
    assert dbmod.current_revision(db_url) is None

    dbmod.upgrade(db_url)
    assert _objects(db_url)[0] == set(metadata.tables)


def test_stepwise_downgrade_removes_the_views_first(db_url: str) -> None:
    dbmod.upgrade(db_url)
    dbmod.downgrade(db_url, "0001")
    tables, views = _objects(db_url)
    assert tables == set(metadata.tables) - LATER_TABLES and not (VIEWS & views)


def test_autogenerate_finds_no_difference(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    dbmod.upgrade(db_url)
    engine = dbmod.make_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": dbmod.include_object})
        diff = compare_metadata(ctx, metadata)
    engine.dispose()
    assert diff == []


def test_unknown_revision_is_refused(db_url: str) -> None:
    import pytest

    from catalog.db import CatalogError

    dbmod.upgrade(db_url)
    with pytest.raises(CatalogError, match="unknown revision 'zzz'; valid: 0001, 0002, 0003, 0004, 0005, 0006, 0007, 0008, base"):
        dbmod.downgrade(db_url, "zzz")
