"""Test databases: a real SQLite file and a real, throwaway PostgreSQL server.

The PostgreSQL server is started once per test session: ``initdb`` into a temporary
directory (as an unprivileged user when the tests run as root, since PostgreSQL refuses
root), on a free loopback port, and torn down at the end even when tests fail.  Where
PostgreSQL binaries are absent the PostgreSQL half is skipped with a visible reason,
except under CI (``CI=true``), where that is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.pgserver import PgServer, PgUnavailable, throwaway_server

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        with throwaway_server() as server:
            yield server
    except PgUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {exc}")
        pytest.skip(f"{exc}; PostgreSQL tests skipped")


def new_database(request: pytest.FixtureRequest, backend: str, tmp_dir: Path) -> Iterator[str]:
    """A fresh, empty database of ``backend``; dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / 'catalog.db'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    server.admin(f'CREATE DATABASE "{name}"')
    try:
        yield server.url(name)
    finally:
        server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, once on SQLite and once on PostgreSQL."""
    yield from new_database(request, request.param, tmp_path)


@pytest.fixture(scope="session", params=BACKENDS)
def seeded_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database seeded with the built-in catalog, shared by read-only tests."""
    from catalog import db as dbmod
    from catalog import fixtures as fx

    for url in new_database(request, request.param, tmp_path_factory.mktemp("seeded")):
        dbmod.upgrade(url)
        engine = dbmod.make_engine(url)
        fx.seed(engine, fx.read_files(fx.builtin_fixture_files()))
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def builtin():  # type: ignore[no-untyped-def]
    """The validated built-in fixtures (the test oracle for query results)."""
    from catalog import fixtures as fx

    return fx.read_files(fx.builtin_fixture_files())


def console_script(name: str) -> str:
    """Path of an installed console script in the interpreter's environment."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"console script {name!r} is not installed; run `pip install -e .` first")
    return found


@pytest.fixture(scope="session")
def catalog_cmd() -> str:
    return console_script("catalog")


def run_cli(cmd: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    full_env = {k: v for k, v in os.environ.items() if k != "CATALOG_DB_URL"}
    full_env.update(env or {})
    return subprocess.run([cmd, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


# --------------------------------------------------------------------------- evaluator fixtures


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama + BPE tokenizer, built once per session (tests/tiny_model.py)."""
    pytest.importorskip("transformers")
    from .tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session", params=BACKENDS)
def eval_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The built-in catalog plus the tiny model's row, on SQLite and on PostgreSQL."""
    from .tiny_model import seed_catalog

    tmp = tmp_path_factory.mktemp("evaldb")
    for url in new_database(request, request.param, tmp):
        yield seed_catalog(url, tmp)


@pytest.fixture(scope="session")
def seeded_tiny_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    from .tiny_model import seed_catalog

    tmp = tmp_path_factory.mktemp("tinydb")
    return seed_catalog(f"sqlite:///{tmp / 'e.db'}", tmp)
