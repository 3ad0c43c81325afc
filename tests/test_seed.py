"""Seeding: migrate to head, upsert idempotently, report counts, and never half-write."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from catalog import db as dbmod
from catalog import fixtures as fx

from .test_fixtures import GOOD_MODEL


def _seed(url: str, *extra: Path) -> fx.SeedReport:
    dbmod.upgrade(url)
    engine = dbmod.make_engine(url)
    try:
        return fx.seed(engine, fx.read_files([*fx.builtin_fixture_files(), *extra]))
    finally:
        engine.dispose()


def _search(url: str, term: str) -> list[str]:
    from catalog import queries

    with dbmod.make_engine(url).connect() as conn:
        return [r["id"] for r in queries.query_models(conn, queries.ModelFilter(search=term))]


def _count(url: str, sql: str) -> int:
    engine = dbmod.make_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar_one()
    engine.dispose()
    return int(value)


def test_seed_twice_changes_nothing_the_second_time(db_url: str) -> None:
    first = _seed(db_url)
    assert first.counts["models"] == {"added": 43, "updated": 0, "unchanged": 0}
    assert first.changed
    second = _seed(db_url)
    assert not second.changed
    assert second.counts["models"] == {"added": 0, "updated": 0, "unchanged": 43}
    assert all(c["added"] == 0 and c["updated"] == 0 for c in second.counts.values())
    assert _count(db_url, "SELECT COUNT(*) FROM model") == 43
    assert _count(db_url, "SELECT COUNT(*) FROM category_model WHERE is_primary") == 43


def test_user_fixture_adds_a_model_and_a_change_is_an_update(db_url: str, tmp_path: Path) -> None:
    _seed(db_url)
    user = tmp_path / "mine.yaml"
    user.write_text(GOOD_MODEL)
    report = _seed(db_url, user)
    assert report.counts["models"] == {"added": 1, "updated": 0, "unchanged": 43}
    user.write_text(GOOD_MODEL.replace("params_b: 1.5", "params_b: 3.5"))
    report = _seed(db_url, user)
    assert report.counts["models"] == {"added": 0, "updated": 1, "unchanged": 43}
    assert _count(db_url, "SELECT COUNT(*) FROM model_facets WHERE id = 'my_model' AND size_bucket = 'small'") == 1
    # The text-search index follows inserts and updates (SQLite: FTS5 triggers).
    assert _search(db_url, "my model") == ["my_model"]
    user.write_text(GOOD_MODEL.replace("params_b: 1.5", "params_b: 3.5").replace("name: My Model", "name: Renamed"))
    _seed(db_url, user)
    assert _search(db_url, "my model") == [] and _search(db_url, "renamed") == ["my_model"]
    user.write_text(GOOD_MODEL.replace("params_b: 1.5", "params_b: 3.5"))
    _seed(db_url, user)
    # Only a category membership changes: still an update of that model.
    user.write_text(GOOD_MODEL.replace("params_b: 1.5", "params_b: 3.5").replace(
        "primary_category: general_purpose", "primary_category: general_purpose\n    other_categories: [efficiency_optimized]"))
    report = _seed(db_url, user)
    assert report.counts["models"] == {"added": 0, "updated": 1, "unchanged": 43}
    assert _count(db_url, "SELECT COUNT(*) FROM category_model WHERE model_id = 'my_model'") == 2


def test_bad_reference_writes_nothing(db_url: str, tmp_path: Path) -> None:
    _seed(db_url)
    before = _count(db_url, "SELECT COUNT(*) FROM model")
    good = tmp_path / "a.yaml"
    good.write_text(GOOD_MODEL)
    bad = tmp_path / "b.yaml"
    bad.write_text(GOOD_MODEL.replace("my_model", "other_model").replace("me/my-model", "me/other")
                   .replace("license_id: apache-2.0", "license_id: apache"))  # fmt: skip
    with pytest.raises(fx.FixtureError, match=r"unknown value 'apache'; valid: apache-2.0"):
        _seed(db_url, good, bad)
    assert _count(db_url, "SELECT COUNT(*) FROM model") == before
    assert _count(db_url, "SELECT COUNT(*) FROM model WHERE id = 'my_model'") == 0


def test_dry_run_reports_but_writes_nothing(db_url: str) -> None:
    dbmod.upgrade(db_url)
    engine = dbmod.make_engine(db_url)
    report = fx.seed(engine, fx.read_files(fx.builtin_fixture_files()), dry_run=True)
    engine.dispose()
    assert report.counts["models"]["added"] == 43
    assert _count(db_url, "SELECT COUNT(*) FROM model") == 0


def test_gapped_size_buckets_are_refused(db_url: str, tmp_path: Path) -> None:
    _seed(db_url)
    bad = tmp_path / "buckets.yaml"
    bad.write_text("size_buckets:\n  - {id: small, label: S, min_params_b: 3.5, max_params_b: 7, sort_order: 2}\n")
    engine = dbmod.make_engine(db_url)
    try:
        with pytest.raises(fx.FixtureError, match="starts at 3.5 but the previous one ends at 3"):
            fx.seed(engine, fx.read_files([bad]))
    finally:
        engine.dispose()
    assert _count(db_url, "SELECT COUNT(*) FROM size_bucket WHERE min_params_b = 3") == 1
