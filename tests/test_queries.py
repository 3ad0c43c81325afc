"""Every `catalog query` filter, checked against the fixtures as an independent oracle,
and the distributions checked against their views, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import pytest
from sqlalchemy import text

from catalog import db as dbmod
from catalog import queries
from catalog.db import CatalogError


def _bucket(params: float, buckets: list[Any]) -> str:
    return next(b.id for b in buckets if params >= b.min_params_b and (b.max_params_b is None or params < b.max_params_b))


def _ids(url: str, f: queries.ModelFilter, **kw: Any) -> list[str]:
    with dbmod.make_engine(url).connect() as conn:
        return [r["id"] for r in queries.query_models(conn, f, **kw)]


LICENSE_FAMILY = {"apache-2.0": "permissive", "mit": "permissive"}

CASES: list[tuple[str, queries.ModelFilter, Callable[[Any, dict[str, Any]], bool]]] = [
    ("license+context", queries.ModelFilter(licenses=["apache-2.0"], min_context=128000),
     lambda m, x: m.license_id == "apache-2.0" and m.max_context >= 128000),
    ("two licenses", queries.ModelFilter(licenses=["mit", "gemma"]), lambda m, x: m.license_id in ("mit", "gemma")),
    ("license family", queries.ModelFilter(license_family="permissive"),
     lambda m, x: x["lic_family"][m.license_id] == "permissive"),
    ("min params", queries.ModelFilter(min_params=30), lambda m, x: m.params_b >= 30),
    ("max params", queries.ModelFilter(max_params=1), lambda m, x: m.params_b <= 1),
    ("size", queries.ModelFilter(size="small_medium"), lambda m, x: x["bucket"](m.params_b) == "small_medium"),
    ("size large", queries.ModelFilter(size="large"), lambda m, x: x["bucket"](m.params_b) == "large"),
    ("category+max params", queries.ModelFilter(category="biomedical_specialists", max_params=10),
     lambda m, x: "biomedical_specialists" in [m.primary_category, *m.other_categories] and m.params_b <= 10),
    ("planned category", queries.ModelFilter(category="multimodal_processing"),
     lambda m, x: "multimodal_processing" in m.other_categories),
    ("kind", queries.ModelFilter(kind="encoder"), lambda m, x: m.kind == "encoder"),
    ("family", queries.ModelFilter(family="QWEN2.5"), lambda m, x: m.family.lower() == "qwen2.5"),
    ("quantization", queries.ModelFilter(quantization="awq"), lambda m, x: m.quantization == "awq"),
    ("gated", queries.ModelFilter(gated=True), lambda m, x: m.gated),
    ("not gated", queries.ModelFilter(gated=False), lambda m, x: not m.gated),
    ("search", queries.ModelFilter(search="Bio"),
     lambda m, x: any("bio" in v.lower() for v in (m.id, m.name, m.hub_id, m.family))),
    ("search short term", queries.ModelFilter(search="Yi"),
     lambda m, x: any("yi" in v.lower() for v in (m.id, m.name, m.hub_id, m.family))),
    ("search underscore is literal", queries.ModelFilter(search="5_7"),
     lambda m, x: any("5_7" in v.lower() for v in (m.id, m.name, m.hub_id, m.family))),
    ("search across hub id", queries.ModelFilter(search="mistralai/"),
     lambda m, x: "mistralai/" in m.hub_id.lower()),
    ("everything", queries.ModelFilter(licenses=["apache-2.0"], license_family="permissive", min_context=8000,
                                       min_params=1, max_params=20, kind="causal-lm", gated=False,
                                       category="general_purpose", quantization="none"),
     lambda m, x: m.license_id == "apache-2.0" and m.max_context >= 8000 and 1 <= m.params_b <= 20
     and m.kind == "causal-lm" and not m.gated and m.quantization == "none"
     and "general_purpose" in [m.primary_category, *m.other_categories]),
]  # fmt: skip


@pytest.mark.parametrize("name,flt,oracle", CASES, ids=[c[0] for c in CASES])
def test_filter_matches_the_fixtures(seeded_url: str, builtin, name: str, flt, oracle) -> None:  # type: ignore[no-untyped-def]
    extra = {
        "lic_family": {lic.id: lic.family for lic in builtin.of("licenses")},
        "bucket": lambda p: _bucket(p, builtin.of("size_buckets")),
    }
    expected = sorted(m.id for m in builtin.of("models") if oracle(m, extra))
    got = _ids(seeded_url, flt)
    assert got == expected
    assert expected, f"filter {name!r} should select something in the built-in catalog"


def test_readme_query_has_the_known_answer(seeded_url: str) -> None:
    got = _ids(seeded_url, queries.ModelFilter(licenses=["apache-2.0"], min_context=128000))
    assert {"qwen3_8b", "qwen3_14b", "qwen25_7b", "mistral_nemo_12b"} <= set(got)
    assert "llama31_8b" not in got  # 128k, but llama3.1-licensed


def test_sort_limit_and_columns(seeded_url: str, builtin) -> None:  # type: ignore[no-untyped-def]
    with dbmod.make_engine(seeded_url).connect() as conn:
        rows = queries.query_models(conn, queries.ModelFilter(), columns=["id", "max_context"],
                                    sort="-max_context,id", limit=3)  # fmt: skip
    expected = sorted(builtin.of("models"), key=lambda m: (-m.max_context, m.id))[:3]
    assert [(r["id"], r["max_context"]) for r in rows] == [(m.id, m.max_context) for m in expected]
    assert set(rows[0]) == {"id", "max_context"}
    with dbmod.make_engine(seeded_url).connect() as conn:
        implicit = queries.query_models(conn, queries.ModelFilter(), columns=["id"], sort="-max_context", limit=5)
    # Without an explicit id, ties break on id in the direction of the last sort key.
    assert [r["id"] for r in implicit] == [m.id for m in sorted(builtin.of("models"),
                                                                key=lambda m: (m.max_context, m.id), reverse=True)[:5]]


@pytest.mark.parametrize(
    "flt,message",
    [
        (queries.ModelFilter(licenses=["apache"]), "unknown license 'apache'; valid: apache-2.0"),
        (queries.ModelFilter(size="huge"), "unknown size bucket 'huge'; valid: tiny, small, small_medium"),
        (queries.ModelFilter(category="coding"), "unknown category 'coding'; valid: biomedical_specialists"),
        (queries.ModelFilter(kind="decoder"), "unknown kind 'decoder'; valid: causal-lm"),
        (queries.ModelFilter(quantization="q4"), "unknown quantization 'q4'; valid: none, awq"),
        (queries.ModelFilter(license_family="free"), "unknown license family 'free'; valid: permissive"),
        (queries.ModelFilter(min_params=10, max_params=5), "larger than --max-params"),
    ],
)
def test_bad_filter_values_name_the_valid_choices(seeded_url: str, flt, message: str) -> None:  # type: ignore[no-untyped-def]
    with dbmod.make_engine(seeded_url).connect() as conn, pytest.raises(CatalogError) as err:
        queries.query_models(conn, flt)
    assert message in str(err.value)


def test_stats_equal_the_views_and_the_fixtures(seeded_url: str, builtin) -> None:  # type: ignore[no-untyped-def]
    with dbmod.make_engine(seeded_url).connect() as conn:
        result = queries.stats(conn)
        views = {
            name: {tuple(r) for r in conn.execute(text(sql))}
            for name, sql in {
                "size": "SELECT size_bucket, models FROM size_distribution",
                "license": "SELECT license_id, models FROM license_distribution WHERE models > 0",
                "category": "SELECT category_id, models, datasets FROM category_summary",
            }.items()
        }
    buckets = builtin.of("size_buckets")
    by_size = Counter(_bucket(m.params_b, buckets) for m in builtin.of("models"))
    assert {(r["size_bucket"], r["models"]) for r in result["size_distribution"]} == views["size"]
    assert views["size"] == {(b.id, by_size.get(b.id, 0)) for b in buckets}
    by_license = Counter(m.license_id for m in builtin.of("models"))
    assert {(r["license_id"], r["models"]) for r in result["license_distribution"]} == views["license"]
    assert views["license"] == set(by_license.items())
    members = Counter(c for m in builtin.of("models") for c in [m.primary_category, *m.other_categories])
    ds = {c.id: len(c.datasets.primary) + len(c.datasets.optional) for c in builtin.of("categories")}
    assert views["category"] == {(c, members.get(c, 0), ds[c]) for c in ds}
    assert {(r["category_id"], r["models"], r["datasets"]) for r in result["category_summary"]} == views["category"]


def test_model_facets_has_the_contract_columns(seeded_url: str) -> None:
    required = {"id", "hub_id", "license_id", "license_family", "params_b", "native_context", "max_context",
                "size_bucket", "primary_category", "kind", "quantization", "gated"}  # fmt: skip
    with dbmod.make_engine(seeded_url).connect() as conn:
        result = conn.execute(text("SELECT * FROM model_facets"))
        cols, rows = set(result.keys()), result.fetchall()
    assert required <= cols
    assert len(rows) == 43


def test_show_and_mapping(seeded_url: str) -> None:
    with dbmod.make_engine(seeded_url).connect() as conn:
        info = queries.show_model(conn, "biomedlm_7b")
        summary = {r["model_id"]: r for r in queries.mapping_summary(conn)}
        with pytest.raises(CatalogError, match="unknown model 'nope'; valid: bio_clinicalbert"):
            queries.show_model(conn, "nope")
    assert info["model"]["hub_id"] == "stanford-crfm/BioMedLM"
    assert info["facets"]["primary_category"] == "biomedical_specialists"
    assert any(r["dataset_id"] == "medqa" and abs(r["value"] - 0.503) < 1e-9 for r in info["published_results"])
    assert sorted(summary["qwen3_14b"]["primary_datasets"].split(", ")) == ["humaneval", "mbpp"]
    assert len(summary) == 43
