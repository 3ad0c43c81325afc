"""`catalog export`: model_facets (or any view/table) to CSV, JSON and Parquet, the same on both databases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from catalog import db as dbmod
from catalog.db import CatalogError
from catalog.export import export

from .conftest import run_cli


def test_formats_hold_every_row(seeded_url: str, tmp_path: Path) -> None:
    engine = dbmod.make_engine(seeded_url, read_only=True)
    path, n = export(engine, "model_facets", "json", tmp_path / "f.json")
    rows = json.loads(path.read_text())
    assert n == len(rows) == 43
    by_id = {r["id"]: r for r in rows}
    assert by_id["llama31_8b"]["gated"] is True and by_id["qwen3_14b"]["gated"] is False
    assert by_id["qwen3_14b"]["size_bucket"] == "medium"

    path, n = export(engine, "size_distribution", "csv", tmp_path / "s.csv")
    with path.open() as fh:
        table = list(csv.DictReader(fh))
    assert sum(int(r["models"]) for r in table) == 43 and n == 5

    pq = pytest.importorskip("pyarrow.parquet")
    path, n = export(engine, "model_facets", "parquet", tmp_path / "f.parquet")
    t = pq.read_table(path)
    assert t.num_rows == 43 and str(t.schema.field("gated").type) == "bool"
    assert not list(tmp_path.glob("*.part"))


def test_unknown_relation_or_format(seeded_url: str, tmp_path: Path) -> None:
    engine = dbmod.make_engine(seeded_url, read_only=True)
    with pytest.raises(CatalogError, match="unknown view or table 'nope'; valid: category"):
        export(engine, "nope", "csv", tmp_path / "x.csv")
    with pytest.raises(CatalogError, match="unknown export format 'xlsx'; valid: csv, json, parquet"):
        export(engine, "model_facets", "xlsx", tmp_path / "x.xlsx")
    assert not list(tmp_path.iterdir())


def test_every_catalog_command_through_the_console_script(seeded_url: str, catalog_cmd: str, tmp_path: Path) -> None:
    """The CLI unchanged on both databases (PostgreSQL included), through the real console script."""
    for args in (["query", "--license", "apache-2.0", "--min-context", "128000", "-f", "json"],
                 ["stats", "-f", "json"], ["show", "qwen3_14b", "-f", "json"], ["categories", "coding_specialists"],
                 ["datasets"], ["mapping"], ["sql", "SELECT COUNT(*) AS n FROM model_facets", "-f", "json"],
                 ["db", "current"], ["export", "-f", "csv", "-o", str(tmp_path / "m.csv")]):  # fmt: skip
        proc = run_cli(catalog_cmd, *args, "--db", seeded_url)
        assert proc.returncode == 0, (args, proc.stderr)
    count = run_cli(catalog_cmd, "sql", "SELECT COUNT(*) AS n FROM model_facets", "-f", "json", "--db", seeded_url)
    assert json.loads(count.stdout) == [{"n": 43}]
    bad = run_cli(catalog_cmd, "query", "--license", "nope", "--db", seeded_url)
    assert bad.returncode == 2 and "unknown license 'nope'" in bad.stderr
