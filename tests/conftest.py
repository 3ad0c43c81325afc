"""Test databases: a real SQLite file and a real, throwaway PostgreSQL server.

The PostgreSQL server is started once per test session: ``initdb`` into a temporary
directory (as an unprivileged user when the tests run as root, since PostgreSQL refuses
root), on a free loopback port, and torn down at the end even when tests fail.  Where
PostgreSQL binaries are absent the PostgreSQL half is skipped with a visible reason,
except under CI (``CI=true``), where that is an error.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgresql")


def _pg_bindir() -> str | None:
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return str(Path(shutil.which("initdb")).resolve().parent)  # type: ignore[arg-type]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        cand = out.stdout.strip()
        if out.returncode == 0 and Path(cand, "initdb").exists():
            return cand
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres/nobody) to run PostgreSQL")


@dataclass
class PgServer:
    port: int
    admin_url: str

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = _pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests, but no PostgreSQL server binaries were found")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; PostgreSQL tests skipped")
    user = _unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="catalog-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if user:
        shutil.chown(base, user)
        shutil.chown(sock, user)
        base.chmod(0o700)

    def as_user(cmd: list[str]) -> list[str]:
        return ["runuser", "-u", user, "--", *cmd] if user else cmd

    port = _free_port()
    log = base / "server.log"
    try:
        subprocess.run(
            as_user([f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                     "--no-sync"]),
            check=True, capture_output=True,
        )  # fmt: skip
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            as_user([f"{bindir}/pg_ctl", "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"]),
            check=True, capture_output=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace") + (log.read_text() if log.exists() else "")
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {detail.strip()[-2000:]}")
    server = PgServer(port=port, admin_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
    try:
        yield server
    finally:
        subprocess.run(as_user([f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def _pg_admin(server: PgServer, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(sql)


def new_database(request: pytest.FixtureRequest, backend: str, tmp_dir: Path) -> Iterator[str]:
    """A fresh, empty database of ``backend``; dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / 'catalog.db'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    _pg_admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield server.url(name)
    finally:
        _pg_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
