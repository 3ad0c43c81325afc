"""Engine and migrations: which database, how it is configured, and bringing it to head.

Resolution order for the database URL: ``--db URL``, then ``CATALOG_DB_URL``, then a SQLite
file ``catalog.db`` in the current directory.  Only SQLAlchemy is imported at module level
(Alembic and the ORM are imported inside the functions that need them) so that read-only
commands start fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

if TYPE_CHECKING:
    from alembic.config import Config

ENV_VAR = "CATALOG_DB_URL"
DEFAULT_URL = "sqlite:///catalog.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK_ID = 7226009  # PostgreSQL advisory lock key for migrations
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class CatalogError(Exception):
    """An error the user can fix; the CLI prints it on one line and exits with code 2."""


def resolve_url(url: Optional[str] = None) -> str:
    """The database URL to use: the explicit one, else $CATALOG_DB_URL, else ./catalog.db."""
    chosen = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    try:
        parsed = make_url(chosen)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise CatalogError(
            f"invalid database URL {chosen!r}: expected e.g. sqlite:///catalog.db or "
            "postgresql+psycopg://user@host/dbname"
        ) from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise CatalogError(
            f"unsupported database {parsed.get_backend_name()!r} in {chosen!r}; valid: sqlite, postgresql"
        )
    return chosen


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see _sqlite_begin_immediate).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets readers and one writer work side by side; the busy timeout makes a second
    # writer wait for the lock instead of failing with "database is locked".
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA journal_mode")
    mode = cur.fetchone()
    if mode and str(mode[0]).lower() not in ("wal", "memory"):
        cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


def make_engine(url: Optional[str] = None, *, read_only: bool = False) -> Engine:
    """An engine for the catalog database.

    ``read_only`` opens SQLite files with ``mode=ro`` so that the connection itself cannot
    write; PostgreSQL read-only-ness is set per transaction by the caller (see queries.run_sql).
    """
    resolved = resolve_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if read_only:
            if not database or database == ":memory:":
                raise CatalogError("a read-only connection needs a SQLite file, not an in-memory database")
            if not Path(database).exists():
                raise CatalogError(f"database file {database!r} does not exist; run `catalog seed` first")
            uri = f"file:{Path(database).resolve()}?mode=ro"
            engine = create_engine(
                "sqlite://", creator=lambda: _sqlite_connect(uri), poolclass=_null_pool()
            )
        else:
            engine = create_engine(resolved, poolclass=_null_pool())
        if read_only:
            event.listen(engine, "connect", _sqlite_ro_pragmas)
        else:
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(resolved, pool_pre_ping=True)


def _sqlite_begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
    """Take the write lock when the transaction starts, not at its first write.

    A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
    another writer committed in between (the busy timeout does not apply to it); taking the
    lock up front makes concurrent writers queue behind the busy timeout instead.
    """
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _null_pool():  # type: ignore[no-untyped-def]
    from sqlalchemy.pool import NullPool

    return NullPool


def _sqlite_connect(uri: str):  # type: ignore[no-untyped-def]
    import sqlite3

    return sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)


def _sqlite_ro_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA query_only = ON")
    cur.close()


# Database objects that migrations create outside the SQLModel metadata: the text-search index
# (SQLite's FTS5 table and its shadow tables; PostgreSQL's trigram index). Autogenerate and
# the table listings leave them out.
SEARCH_OBJECT_PREFIXES = ("model_search", "ix_model_search")


def is_search_object(name: str | None) -> bool:
    return bool(name) and str(name).startswith(SEARCH_OBJECT_PREFIXES)


def include_object(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    """Alembic autogenerate filter: ignore the search index objects (see migration 0007)."""
    return not is_search_object(name)


def alembic_config(url: str) -> "Config":
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is an interpolation character in ConfigParser.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _run_alembic(url: Optional[str], action: str, revision: str = "head") -> None:
    from alembic import command

    resolved = resolve_url(url)
    engine = make_engine(resolved)
    cfg = alembic_config(resolved)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes migrating a fresh database at once would both CREATE TABLE; the
            # lock makes the second wait and then find the schema already at head.
            # (SQLite serialises the same way through BEGIN IMMEDIATE.)
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        cfg.attributes["connection"] = conn
        if action == "upgrade":
            command.upgrade(cfg, revision)
        elif action == "downgrade":
            command.downgrade(cfg, revision)
        else:  # pragma: no cover - guarded by callers
            raise ValueError(action)
    engine.dispose()


def upgrade(url: Optional[str] = None, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (default: head)."""
    _run_alembic(url, "upgrade", revision)


def downgrade(url: Optional[str], revision: str) -> None:
    """Migrate the database down to ``revision`` (``base`` drops everything)."""
    known = {"base", *all_revisions()}
    if revision not in known and not revision.startswith("-"):
        raise CatalogError(f"unknown revision {revision!r}; valid: {', '.join(sorted(known))}, or -N")
    _run_alembic(url, "downgrade", revision)


def all_revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return [rev.revision for rev in script.walk_revisions()]


def current_revision(url: Optional[str] = None) -> Optional[str]:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    return rev


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head
