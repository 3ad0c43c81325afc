"""The CLI through its real console script, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run_cli


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory, catalog_cmd: str) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'cli.db'}"
    proc = run_cli(catalog_cmd, "seed", "--db", url)
    assert proc.returncode == 0, proc.stderr
    return url


def test_seed_reports_counts_and_is_idempotent(catalog_cmd: str, tmp_path: Path) -> None:
    first = run_cli(catalog_cmd, "seed", cwd=tmp_path)  # default: ./catalog.db
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "catalog.db").exists()
    assert "43 models; changed the catalog" in first.stdout
    second = run_cli(catalog_cmd, "seed", cwd=tmp_path)
    assert "nothing changed" in second.stdout
    models_line = next(line for line in second.stdout.splitlines() if line.startswith("models"))
    assert models_line.split()[1:] == ["0", "0", "43"]


def test_env_var_selects_the_database(catalog_cmd: str, cli_db: str, tmp_path: Path) -> None:
    proc = run_cli(catalog_cmd, "query", "--search", "biogpt", "--format", "json",
                   env={"CATALOG_DB_URL": cli_db}, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["id"] for r in json.loads(proc.stdout)) == ["biogpt", "biogpt_large"]
    assert not (tmp_path / "catalog.db").exists()


def test_readme_query_and_formats(catalog_cmd: str, cli_db: str) -> None:
    proc = run_cli(catalog_cmd, "query", "--license", "apache-2.0", "--min-context", "128000", "--db", cli_db)
    assert proc.returncode == 0 and "qwen3_14b" in proc.stdout and "llama31_8b" not in proc.stdout
    md = run_cli(catalog_cmd, "query", "--category", "biomedical_specialists", "--max-params", "10",
                 "--format", "markdown", "--db", cli_db)  # fmt: skip
    assert md.stdout.startswith("| id") and "biogpt" in md.stdout and "clinical_camel_70b" not in md.stdout
    csv = run_cli(catalog_cmd, "query", "--kind", "encoder", "--columns", "id,kind", "-f", "csv", "--db", cli_db)
    lines = csv.stdout.splitlines()
    assert lines[0] == "id,kind" and all(line.endswith(",encoder") for line in lines[1:]) and len(lines) > 3


@pytest.mark.parametrize("args", [["show", "qwen3_14b"], ["stats"], ["categories"],
                                  ["categories", "coding_specialists"], ["datasets"], ["mapping"],
                                  ["sql", "SELECT license_id, models FROM license_distribution"],
                                  ["db", "current"]])  # fmt: skip
def test_commands_succeed(catalog_cmd: str, cli_db: str, args: list[str]) -> None:
    proc = run_cli(catalog_cmd, *args, "--db", cli_db)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_stats_prints_the_three_distributions(catalog_cmd: str, cli_db: str) -> None:
    out = run_cli(catalog_cmd, "stats", "--db", cli_db, "-f", "json").stdout
    data = json.loads(out)
    assert sum(r["models"] for r in data["size_distribution"]) == 43
    assert sum(r["models"] for r in data["license_distribution"]) == 43
    assert {r["category_id"] for r in data["category_summary"]} >= {"coding_specialists", "safety_alignment"}


@pytest.mark.parametrize(
    "args,needle",
    [
        (["query", "--license", "apache"], "unknown license 'apache'; valid: apache-2.0"),
        (["query", "--category", "nope"], "unknown category 'nope'; valid:"),
        (["query", "--size", "huge"], "unknown size bucket 'huge'; valid: tiny"),
        (["query", "--format", "xml"], "unknown format 'xml'; valid: table, markdown, csv, json"),
        (["show", "qwen9"], "unknown model 'qwen9'; valid:"),
        (["sql", "DELETE FROM model"], "read-only"),
        (["db", "downgrade", "nope"], "unknown revision 'nope'"),
    ],
)
def test_bad_input_is_one_line_exit_2(catalog_cmd: str, cli_db: str, args: list[str], needle: str) -> None:
    proc = run_cli(catalog_cmd, *args, "--db", cli_db)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""


def test_malformed_fixture_writes_nothing(catalog_cmd: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    bad = tmp_path / "mine.yaml"
    bad.write_text("models:\n  - id: mine\n    name: x\n")
    proc = run_cli(catalog_cmd, "seed", "--db", url, "--fixtures", str(bad))
    assert proc.returncode == 2
    assert f"{bad}: models[0] (id=mine): field 'hub_id'" in proc.stderr
    assert not (tmp_path / "x.db").exists()  # validated before the database was even created


def test_missing_database_is_explained(catalog_cmd: str, tmp_path: Path) -> None:
    proc = run_cli(catalog_cmd, "stats", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert proc.returncode == 2 and "run `catalog seed` first" in proc.stderr
    assert not (tmp_path / "none.db").exists()


def test_help_lists_every_command(catalog_cmd: str) -> None:
    out = run_cli(catalog_cmd, "--help").stdout
    for name in ("seed", "query", "show", "stats", "categories", "datasets", "mapping", "sql", "db"):
        assert name in out


HEAVY = ("torch", "transformers", "datasets", "vllm")
IMPORT_CHECK = """
import sys

attempted = []


class Recorder:
    # Records every attempt to import a heavy library, installed or not.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            attempted.append(name)
        return None


sys.meta_path.insert(0, Recorder())
from catalog.cli import app
for args in (["query", "--license", "apache-2.0", "--db", URL], ["stats", "--db", URL],
             ["show", "qwen3_14b", "--db", URL], ["mapping", "--db", URL], ["seed", "--db", URL]):
    try:
        app(args)
    except SystemExit as e:
        assert e.code in (0, None), (args, e.code)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print("HEAVY:" + ",".join(heavy + attempted))
"""


def test_catalog_commands_never_import_heavy_libraries(cli_db: str) -> None:
    code = f"URL = {cli_db!r}\nHEAVY = {HEAVY!r}\n" + IMPORT_CHECK
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY:"
