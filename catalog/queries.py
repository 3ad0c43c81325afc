"""Catalog questions as SQL: filters become WHERE clauses, distributions are the BI views.

Nothing here prints, and nothing filters or counts in Python.  Only SQLAlchemy Core is
used (lightweight ``table()``/``column()`` clauses over the views), so the read path never
imports the ORM or pydantic and the CLI starts fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, Connection, and_, column, func, literal_column, or_, select, table, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from catalog.db import CatalogError
from catalog.vocab import LICENSE_FAMILIES, MODEL_KINDS, QUANTIZATIONS


FACET_COLUMNS = (
    "id", "name", "hub_id", "family", "architecture", "kind", "params_b", "active_params_b",
    "weights_gb", "native_context", "max_context", "license_id", "license_family",
    "commercial_use", "size_bucket", "primary_category", "subcategory", "quantization",
    "quantized_hub_id", "gated", "preset_id", "gpu_memory_utilization", "max_model_len",
    "evaluation_batch_size", "priority", "trust_remote_code", "release_date",
)  # fmt: skip
DEFAULT_COLUMNS = (
    "id", "hub_id", "params_b", "max_context", "license_id", "size_bucket", "primary_category", "kind",
)  # fmt: skip

BOOL_COLUMNS = ("gated", "trust_remote_code", "chat_template", "agent_optimized", "commercial_use",
                "is_primary", "needs_data_file")  # fmt: skip
JSON_COLUMNS = ("primary_use_cases", "sources", "stop")


def _typed(name: str) -> Any:
    """A column clause typed so SQLite's 0/1 and JSON text come back as bool and lists."""
    if name in BOOL_COLUMNS:
        return column(name, Boolean)
    if name in JSON_COLUMNS:
        return column(name, JSON)
    return column(name)


model_facets = table("model_facets", *(_typed(c) for c in FACET_COLUMNS))
model_t = table("model", column("id"), column("params_b"), column("max_context"), column("license_id"),
                column("kind"), column("family"), column("quantization"), column("gated"),
                column("name"), column("hub_id"))  # fmt: skip
license_t = table("license", column("id"), column("family"))
size_bucket_t = table("size_bucket", column("id"), column("min_params_b"), column("max_params_b"),
                      column("sort_order"))  # fmt: skip
category_t = table("category", column("id"))
category_model_t = table("category_model", column("category_id"), column("model_id"), _typed("is_primary"))
category_dataset_t = table("category_dataset", column("category_id"), column("dataset_id"), column("role"))


def _choice_error(what: str, value: Any, valid: Sequence[Any]) -> CatalogError:
    return CatalogError(f"unknown {what} {value!r}; valid: {', '.join(str(v) for v in valid)}")


def check_choice(what: str, value: Any, valid: Sequence[Any]) -> None:
    """Raise a one-line CatalogError naming ``value`` and the valid choices."""
    if value not in valid:
        raise _choice_error(what, value, valid)


def ids_of(conn: Connection, tbl: Any, order: Any = None) -> list[str]:
    stmt = select(tbl.c.id).order_by(order if order is not None else tbl.c.id)
    return list(conn.execute(stmt).scalars())


@dataclass
class ModelFilter:
    """Every filter of ``catalog query``; each one becomes SQL in :func:`filter_clauses`."""

    licenses: list[str] = field(default_factory=list)
    license_family: Optional[str] = None
    min_context: Optional[int] = None
    min_params: Optional[float] = None
    max_params: Optional[float] = None
    size: Optional[str] = None
    category: Optional[str] = None
    kind: Optional[str] = None
    family: Optional[str] = None
    quantization: Optional[str] = None
    gated: Optional[bool] = None
    search: Optional[str] = None


def validate_filter(conn: Connection, f: ModelFilter) -> None:
    """Check every choice-valued filter against the database (or the fixed lists)."""
    if f.licenses:
        valid = ids_of(conn, license_t)
        for lic in f.licenses:
            check_choice("license", lic, valid)
    if f.license_family is not None:
        check_choice("license family", f.license_family, LICENSE_FAMILIES)
    if f.size is not None:
        check_choice("size bucket", f.size, ids_of(conn, size_bucket_t, size_bucket_t.c.sort_order))
    if f.category is not None:
        check_choice("category", f.category, ids_of(conn, category_t))
    if f.kind is not None:
        check_choice("kind", f.kind, MODEL_KINDS)
    if f.quantization is not None:
        check_choice("quantization", f.quantization, QUANTIZATIONS)
    if f.min_params is not None and f.max_params is not None and f.min_params > f.max_params:
        raise CatalogError(f"--min-params {f.min_params} is larger than --max-params {f.max_params}")


def filter_clauses(f: ModelFilter, t: Any = model_facets, dialect: Optional[str] = None) -> list[Any]:
    """The WHERE clauses for ``f`` over a relation with the model_facets column names
    (``dialect`` picks the text-search index: "sqlite" or "postgresql")."""
    c = t.c
    where: list[Any] = []
    if f.licenses:
        where.append(c.license_id.in_(f.licenses))
    if f.license_family is not None:
        where.append(c.license_id.in_(select(license_t.c.id).where(license_t.c.family == f.license_family)))
    if f.min_context is not None:
        where.append(c.max_context >= f.min_context)
    if f.min_params is not None:
        where.append(c.params_b >= f.min_params)
    if f.max_params is not None:
        where.append(c.params_b <= f.max_params)
    if f.size is not None:
        # A range on params_b (index-friendly) rather than comparing the computed bucket.
        bucket = select(size_bucket_t).where(size_bucket_t.c.id == f.size).subquery()
        where.append(c.params_b >= select(bucket.c.min_params_b).scalar_subquery())
        upper = select(bucket.c.max_params_b).scalar_subquery()
        where.append(or_(upper.is_(None), c.params_b < upper))
    if f.category is not None:
        members = select(category_model_t.c.model_id).where(category_model_t.c.category_id == f.category)
        where.append(c.id.in_(members))
    if f.kind is not None:
        where.append(c.kind == f.kind)
    if f.family is not None:
        where.append(func.lower(c.family) == f.family.lower())
    if f.quantization is not None:
        where.append(c.quantization == f.quantization)
    if f.gated is not None:
        where.append(c.gated == f.gated)
    if f.search:
        where.append(c.id.in_(search_ids(f.search, dialect)))
    return where


# The searched text, exactly as migration 0007 indexes it (PostgreSQL matches the expression).
SEARCH_TEXT = "lower(m.id || ' ' || m.name || ' ' || m.hub_id || ' ' || m.family)"


def _like_escape(term: str) -> str:
    return term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_ids(term: str, dialect: Optional[str]) -> Any:
    """Ids of models whose key, name, hub id or family contain ``term`` (case-insensitive).

    SQLite answers from the FTS5 trigram table (migration 0007) and PostgreSQL from the
    pg_trgm index on the same expression; both fall back to a scan for terms under 3 letters.
    """
    pattern = f"%{_like_escape(term)}%"
    if dialect == "sqlite" and len(term) >= 3:
        # A quoted FTS5 phrase over trigrams is an exact, case-insensitive substring match.
        phrase = '"' + term.lower().replace('"', '""') + '"'
        return text("SELECT m.id FROM model m WHERE m.rowid IN "
                    "(SELECT rowid FROM model_search WHERE model_search MATCH :search_phrase)"
                    ).bindparams(search_phrase=phrase).columns(column("id"))  # fmt: skip
    return text(f"SELECT m.id FROM model m WHERE {SEARCH_TEXT} LIKE :search_pattern ESCAPE '\\'"
                ).bindparams(search_pattern=pattern).columns(column("id"))  # fmt: skip


def parse_sort(spec: str) -> list[Any]:
    """``"-max_context,id"`` -> ORDER BY max_context DESC, id ASC (columns of model_facets)."""
    order: list[Any] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        desc = part.startswith("-")
        name = part.lstrip("-+")
        check_choice("sort column", name, FACET_COLUMNS)
        col = model_facets.c[name]
        order.append(col.desc() if desc else col.asc())
    return order


def parse_columns(spec: Optional[str]) -> list[str]:
    if not spec:
        return list(DEFAULT_COLUMNS)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        check_choice("column", name, FACET_COLUMNS)
    return names


def query_models(
    conn: Connection,
    f: ModelFilter,
    *,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    sort: str = "id",
    limit: Optional[int] = None,
) -> list[dict[str, Any]]:
    """Models matching ``f`` from the model_facets view."""
    validate_filter(conn, f)
    order = parse_sort(sort)
    if "id" not in sort.replace("-", "").split(","):
        # Deterministic ties, in the direction of the last sort key, so that an index on
        # (key, id) serves the whole ORDER BY (see migration 0008).
        last_descending = sort.split(",")[-1].strip().startswith("-")
        order.append(model_facets.c.id.desc() if last_descending else model_facets.c.id)
    stmt = select(*(model_facets.c[c] for c in columns)).where(and_(True, *filter_clauses(f, dialect=conn.dialect.name))).order_by(*order)
    if limit is not None:
        if limit < 1:
            raise CatalogError(f"--limit must be at least 1 (got {limit})")
        stmt = stmt.limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def model_ids(conn: Connection) -> list[str]:
    return ids_of(conn, model_t)


_MODEL_TYPED = ("gated", "trust_remote_code", "chat_template", "agent_optimized", "primary_use_cases", "sources")


def show_model(conn: Connection, model_id: str) -> dict[str, Any]:
    """Everything about one model: its row, facets, categories, datasets, published results."""
    # Keyword form: types are matched to the SELECT * columns by name, not position.
    model_sql = text("SELECT * FROM model WHERE id = :id").columns(
        **{c: _typed(c).type for c in _MODEL_TYPED}
    )
    row = conn.execute(model_sql, {"id": model_id}).mappings().first()
    if row is None:
        raise _choice_error("model", model_id, model_ids(conn))
    facets = conn.execute(
        text("SELECT license_family, size_bucket, primary_category, gpu_memory_utilization "
             "FROM model_facets WHERE id = :id"), {"id": model_id}
    ).mappings().one()  # fmt: skip
    categories = conn.execute(
        text("SELECT c.id AS category_id, c.status, cm.is_primary FROM category_model cm "
             "JOIN category c ON c.id = cm.category_id WHERE cm.model_id = :id "
             "ORDER BY cm.is_primary DESC, c.id").columns(is_primary=Boolean), {"id": model_id}
    ).mappings().all()  # fmt: skip
    results = conn.execute(
        text("SELECT dataset_id, metric, value, source FROM published_result "
             "WHERE model_id = :id ORDER BY dataset_id, metric"), {"id": model_id}
    ).mappings().all()  # fmt: skip
    return {
        "model": dict(row),
        "facets": dict(facets),
        "categories": [dict(c) for c in categories],
        "datasets": mapping(conn, model_id=model_id),
        "published_results": [dict(r) for r in results],
    }


def size_distribution(conn: Connection) -> list[dict[str, Any]]:
    return _rows(conn, "SELECT size_bucket, label, models FROM size_distribution ORDER BY sort_order")


def license_distribution(conn: Connection) -> list[dict[str, Any]]:
    return _rows(conn, "SELECT license_id, license_family, models FROM license_distribution "
                       "WHERE models > 0 ORDER BY models DESC, license_id")  # fmt: skip


def category_summary(conn: Connection) -> list[dict[str, Any]]:
    return _rows(conn, "SELECT category_id, status, models, primary_models, datasets FROM category_summary "
                       "ORDER BY status, category_id")  # fmt: skip


def stats(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """The three distributions, read from their views."""
    return {
        "size_distribution": size_distribution(conn),
        "license_distribution": license_distribution(conn),
        "category_summary": category_summary(conn),
    }


def _rows(conn: Connection, sql: str, params: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(text(sql), params or {}).mappings()]


def categories(conn: Connection) -> list[dict[str, Any]]:
    return _rows(conn, "SELECT * FROM category_summary ORDER BY status, phase, category_id")


def category_detail(conn: Connection, category_id: str) -> dict[str, Any]:
    row = conn.execute(text("SELECT * FROM category WHERE id = :id"), {"id": category_id}).mappings().first()
    if row is None:
        raise _choice_error("category", category_id, ids_of(conn, category_t))
    return {
        "category": dict(row),
        "datasets": _rows(
            conn, "SELECT d.id AS dataset_id, cd.role, d.hub_id, d.primary_metric FROM category_dataset cd "
                  "JOIN dataset d ON d.id = cd.dataset_id WHERE cd.category_id = :id ORDER BY cd.role DESC, d.id",
            {"id": category_id}),
        "models": _rows(
            conn, "SELECT f.id, f.hub_id, f.params_b, f.license_id, cm.is_primary FROM category_model cm "
                  "JOIN model_facets f ON f.id = cm.model_id WHERE cm.category_id = :id "
                  "ORDER BY cm.is_primary DESC, f.params_b, f.id", {"id": category_id}),
    }  # fmt: skip


def datasets(conn: Connection) -> list[dict[str, Any]]:
    cats = func.aggregate_strings(category_dataset_t.c.category_id, ", ")
    stmt = text(
        "SELECT d.id, d.hub_id, d.config, d.split, d.task_type, d.primary_metric, d.size, d.license "
        "FROM dataset d ORDER BY d.id"
    )
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    used = {
        r.dataset_id: r.categories
        for r in conn.execute(
            select(category_dataset_t.c.dataset_id, cats.label("categories")).group_by(
                category_dataset_t.c.dataset_id
            )
        )
    }
    for r in rows:
        r["categories"] = used.get(r["id"], "")
    return rows


def mapping(conn: Connection, model_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Which datasets each model is evaluated on, through its category memberships."""
    cm, cd = category_model_t.alias("cm"), category_dataset_t.alias("cd")
    stmt = (
        select(
            cm.c.model_id,
            cm.c.category_id,
            cm.c.is_primary.label("primary_category"),
            cd.c.dataset_id,
            cd.c.role,
        )
        .join(cd, cd.c.category_id == cm.c.category_id)
        .order_by(cm.c.model_id, cm.c.is_primary.desc(), cm.c.category_id, cd.c.role.desc(), cd.c.dataset_id)
    )
    if model_id is not None:
        stmt = stmt.where(cm.c.model_id == model_id)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def mapping_summary(conn: Connection) -> list[dict[str, Any]]:
    """One row per model: the primary datasets of its primary category, and every other
    dataset it reaches through any membership (each dataset listed once)."""
    cm, cd = category_model_t.alias("cm"), category_dataset_t.alias("cd")
    core = literal_column("CASE WHEN cm.is_primary AND cd.role = 'primary' THEN 0 ELSE 1 END")
    per_dataset = (
        select(cm.c.model_id, cd.c.dataset_id, func.min(core).label("rank"))
        .join(cd, cd.c.category_id == cm.c.category_id)
        .group_by(cm.c.model_id, cd.c.dataset_id)
        .subquery("per_dataset")
    )
    pick = lambda rank: func.aggregate_strings(  # noqa: E731
        literal_column(f"CASE WHEN per_dataset.rank = {rank} THEN per_dataset.dataset_id END"), ", "
    )
    stmt = (
        select(
            model_facets.c.id.label("model_id"),
            model_facets.c.primary_category,
            pick(0).label("primary_datasets"),
            pick(1).label("other_datasets"),
        )
        .select_from(model_facets)
        .outerjoin(per_dataset, per_dataset.c.model_id == model_facets.c.id)
        .group_by(model_facets.c.id, model_facets.c.primary_category)
        .order_by(model_facets.c.primary_category, model_facets.c.id)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


# --------------------------------------------------------------------------- read-only SQL

_SQL_TOKEN = re.compile(
    r"""('(?:[^']|'')*')            # string literal
      |("(?:[^"]|"")*")             # quoted identifier
      |(--[^\n]*)                   # line comment
      |(/\*.*?\*/)                  # block comment
      |(\$(\w*)\$.*?\$\6\$)         # PostgreSQL dollar-quoted string
      |(;)                          # statement separator
    """,
    re.S | re.X,
)


READ_KEYWORDS = ("select", "with", "values", "table", "explain", "show")
_LEADING_COMMENTS = re.compile(r"^(\s+|--[^\n]*\n?|/\*.*?\*/)*", re.S)


def check_reads_only(statement: str) -> None:
    """Refuse, before it runs, any statement that does not start like a query.

    A database can do harm in a statement that returns no rows (COPY ... TO a server file,
    DO blocks, ATTACH, VACUUM INTO), so checking the result afterwards is too late.  The
    read-only transaction / connection then catches what a query may still try
    (a data-modifying WITH, a write inside a function).
    """
    body = _LEADING_COMMENTS.sub("", statement)
    first = re.match(r"[A-Za-z]+", body)
    keyword = first.group(0).lower() if first else ""
    if keyword not in READ_KEYWORDS:
        raise CatalogError(
            f"catalog sql runs read-only queries only; {keyword.upper() or 'this statement'!r} is not allowed "
            f"(valid: {', '.join(k.upper() for k in READ_KEYWORDS)})"
        )


def single_statement(sql: str) -> str:
    """Return ``sql`` without a trailing ';', refusing more than one statement."""
    body = sql.strip()
    separators = [m.start() for m in _SQL_TOKEN.finditer(body) if m.group(7)]
    if separators and separators[-1] == len(body) - 1 and body.endswith(";"):
        body = body[:-1].rstrip()
        separators = separators[:-1]
    if separators:
        raise CatalogError("only one SQL statement may be run at a time; remove the ';' between statements")
    if not body:
        raise CatalogError("empty SQL statement")
    return body


def _sqlite_authorizer(action: int, *_args: Any) -> int:
    import sqlite3

    allowed = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
               getattr(sqlite3, "SQLITE_RECURSIVE", 33)}  # fmt: skip
    return sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY


def run_sql(engine: Engine, sql: str, params: Optional[dict[str, Any]] = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement; anything that would write is refused and changes nothing.

    SQLite: a ``mode=ro`` connection with ``query_only`` and an authorizer that allows only
    reading (so ATTACH, PRAGMA writes and the like are denied too).  PostgreSQL: a
    ``READ ONLY`` transaction that is rolled back whatever happens.
    """
    statement = single_statement(sql)
    check_reads_only(statement)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.connection.driver_connection.set_authorizer(_sqlite_authorizer)  # type: ignore[union-attr]
        else:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            result = conn.execute(text(statement), params or {})
            if not result.returns_rows:
                raise CatalogError("catalog sql runs read-only queries only (SELECT, WITH ... SELECT)")
            cols = list(result.keys())
            rows = [tuple(r) for r in result]
        except DBAPIError as exc:
            raise CatalogError(f"SQL error: {_first_line(exc.orig)}") from None
        finally:
            conn.rollback()
    return cols, rows


def _first_line(exc: Any) -> str:
    msg = str(exc).strip().splitlines()
    text_ = msg[0] if msg else type(exc).__name__
    if "not authorized" in text_ or "read-only" in text_ or "readonly" in text_.replace(" ", ""):
        return f"{text_} (catalog sql is read-only)"
    return text_
