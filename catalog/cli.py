"""`catalog` command line: thin wrappers that parse, call the library, and render.

Start-up time matters (people run `catalog query` in loops and scripts), so this module
imports only Typer at load time; SQLAlchemy and friends are imported inside the commands,
and torch/transformers/datasets/vllm are never imported by any catalog command.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer

app = typer.Typer(
    name="catalog",
    help="A SQL catalog of open LLMs: seed it, query it, and read its distributions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Schema migrations (Alembic): upgrade, downgrade, current.", no_args_is_help=True)
app.add_typer(db_app, name="db")

DbOpt = Annotated[
    Optional[str],
    typer.Option(
        "--db",
        help="Database URL (sqlite:///path.db or postgresql+psycopg://...). "
        "Default: $CATALOG_DB_URL, else sqlite:///catalog.db.",
        show_default=False,
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output: table, markdown, csv or json.")]

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2


def fail(message: str) -> None:
    """Print a one-line error and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def handles_errors(func: F) -> F:
    """Turn CatalogError and missing-schema database errors into a one-line error, exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from catalog.db import CatalogError

        try:
            return func(*args, **kwargs)
        except CatalogError as exc:
            fail(str(exc))
        except Exception as exc:  # database errors: only the ones a user can act on
            from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

            if isinstance(exc, IntegrityError):
                fail(f"the database refused the write, nothing was changed: {str(exc.orig).splitlines()[0]}")
            if isinstance(exc, (OperationalError, ProgrammingError)):
                msg = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                if "no such table" in msg or "does not exist" in msg:
                    fail(f"the database has no catalog yet ({msg}); run `catalog seed` first")
                fail(f"database error: {msg}")
            raise

    return wrapper  # type: ignore[return-value]


def _echo(text: str) -> None:
    typer.echo(text)


def _reader(db: Optional[str]):  # type: ignore[no-untyped-def]
    """A read-only engine (SQLite: mode=ro, so a typo'd path is not created empty)."""
    from catalog.db import make_engine

    return make_engine(db, read_only=True)


# --------------------------------------------------------------------------- seed


@app.command()
@handles_errors
def seed(
    db: DbOpt = None,
    fixtures: Annotated[
        Optional[list[Path]],
        typer.Option("--fixtures", help="Extra fixture file(s) in the seeds/ format, e.g. your own models."),
    ] = None,
    no_builtin: Annotated[
        bool, typer.Option("--no-builtin", help="Load only the --fixtures files, not the built-in catalog.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report, write nothing.")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Migrate the database to head, then upsert the fixtures (idempotent)."""
    from catalog import db as dbmod
    from catalog import fixtures as fx
    from catalog.render import check_format, render

    check_format(fmt)
    files = ([] if no_builtin else fx.builtin_fixture_files()) + list(fixtures or [])
    if not files:
        fail("nothing to seed: --no-builtin needs at least one --fixtures FILE")
    loaded = fx.read_files(files)  # validate everything before touching the database
    url = dbmod.resolve_url(db)
    if not dry_run:
        dbmod.upgrade(url)
    elif dbmod.current_revision(url) != dbmod.head_revision():
        fail("--dry-run needs a database already at the latest schema; run `catalog db upgrade` first")
    engine = dbmod.make_engine(url)
    report = fx.seed(engine, loaded, dry_run=dry_run)
    engine.dispose()
    _echo(render(report.rows(), fmt))
    if fmt == "table":
        models = report.counts.get("models", {})
        state = "would change" if dry_run else "changed"
        verdict = f"{state} the catalog" if report.changed else "nothing changed (already up to date)"
        _echo(f"\n{_safe_url(url)}: {sum(models.values())} models; {verdict}.")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------- query


@app.command()
@handles_errors
def query(
    db: DbOpt = None,
    license: Annotated[
        Optional[list[str]], typer.Option("--license", "-l", help="Hub license id; repeat for several.")
    ] = None,
    license_family: Annotated[
        Optional[str],
        typer.Option(help="permissive, restricted-open, non-commercial, proprietary or unknown."),
    ] = None,
    min_context: Annotated[Optional[int], typer.Option(help="At least this many tokens of (max) context.")] = None,
    min_params: Annotated[Optional[float], typer.Option(help="At least this many parameters, in billions.")] = None,
    max_params: Annotated[Optional[float], typer.Option(help="At most this many parameters, in billions.")] = None,
    size: Annotated[Optional[str], typer.Option(help="Size bucket: tiny, small, small_medium, medium, large.")] = None,
    category: Annotated[Optional[str], typer.Option(help="Member of this category (primary or not).")] = None,
    kind: Annotated[
        Optional[str], typer.Option(help="causal-lm, encoder, encoder-decoder or vision-language.")
    ] = None,
    family: Annotated[Optional[str], typer.Option(help="Model family, e.g. qwen2.5, llama3.1.")] = None,
    quantization: Annotated[Optional[str], typer.Option(help="none, awq, gptq, fp8 or int8.")] = None,
    gated: Annotated[Optional[bool], typer.Option("--gated/--no-gated", help="Gated on the hub or not.")] = None,
    search: Annotated[Optional[str], typer.Option(help="Text in the key, name, hub id or family.")] = None,
    sort: Annotated[str, typer.Option(help="Columns to sort by, comma-separated; prefix '-' for descending.")] = "id",
    limit: Annotated[Optional[int], typer.Option(help="At most this many rows.")] = None,
    columns: Annotated[
        Optional[str], typer.Option(help="Comma-separated columns of model_facets to show.")
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Models matching every given filter (each filter is a SQL WHERE clause on model_facets)."""
    from catalog import queries
    from catalog.render import check_format, render

    check_format(fmt)
    cols = queries.parse_columns(columns)
    f = queries.ModelFilter(
        licenses=list(license or []), license_family=license_family, min_context=min_context,
        min_params=min_params, max_params=max_params, size=size, category=category, kind=kind,
        family=family, quantization=quantization, gated=gated, search=search,
    )  # fmt: skip
    with _reader(db).connect() as conn:
        rows = queries.query_models(conn, f, columns=cols, sort=sort, limit=limit)
    _echo(render(rows, fmt, cols))
    if fmt == "table":
        _echo(f"\n{len(rows)} model{'s' if len(rows) != 1 else ''}")


# --------------------------------------------------------------------------- show


@app.command()
@handles_errors
def show(
    model: Annotated[str, typer.Argument(help="Model key, e.g. qwen3_14b.")],
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Everything the catalog knows about one model."""
    from catalog import queries
    from catalog.render import check_format, render, render_pairs

    check_format(fmt)
    from catalog import fit_queries

    with _reader(db).connect() as conn:
        info = queries.show_model(conn, model)
        info["memory"] = fit_queries.show_memory(conn, model)
    if fmt == "json":
        from catalog.render import _json_default

        _echo(json.dumps(info, indent=2, default=_json_default))
        return
    facts = {**info["model"], **info["facets"]}
    _echo(render_pairs(facts, fmt))
    sections = (("categories", "categories", None),
                ("datasets", "datasets", ["category_id", "primary_category", "dataset_id", "role"]),
                ("published results", "published_results", None))  # fmt: skip
    for title, key, cols in sections:
        if info[key]:
            _echo(f"\n{title}:\n" + render(info[key], fmt, cols))
    if info.get("memory"):
        _echo("\nmemory (weights; KV cache per 1,000 tokens; GB = 10^9 bytes):\n" + render(info["memory"], fmt))


# --------------------------------------------------------------------------- fit


@app.command()
@handles_errors
def fit(
    db: DbOpt = None,
    gpu: Annotated[Optional[str], typer.Option("--gpu", help="GPU id from the catalog, e.g. h100-80gb.")] = None,
    gpu_mem: Annotated[
        Optional[float], typer.Option("--gpu-mem", help="Or any GPU by its marketed memory, e.g. 24 (read as GiB).")
    ] = None,
    context: Annotated[
        Optional[int], typer.Option(help="Tokens per sequence. Default: each model's max_model_len.")
    ] = None,
    seqs: Annotated[int, typer.Option("--seqs", help="Concurrent sequences of that length.")] = 1,
    max_gpus: Annotated[int, typer.Option("--max-gpus", help="Largest tensor-parallel size to consider.")] = 8,
    explain: Annotated[
        Optional[str], typer.Option("--explain", help="Show every term of the estimate for one model.")
    ] = None,
    license: Annotated[
        Optional[list[str]], typer.Option("--license", "-l", help="Hub license id; repeat for several.")
    ] = None,
    license_family: Annotated[Optional[str], typer.Option(help="permissive, restricted-open, ...")] = None,
    min_context: Annotated[Optional[int], typer.Option(help="At least this many tokens of (max) context.")] = None,
    min_params: Annotated[Optional[float], typer.Option(help="At least this many parameters, in billions.")] = None,
    max_params: Annotated[Optional[float], typer.Option(help="At most this many parameters, in billions.")] = None,
    size: Annotated[Optional[str], typer.Option(help="Size bucket: tiny, small, small_medium, medium, large.")] = None,
    category: Annotated[Optional[str], typer.Option(help="Member of this category (primary or not).")] = None,
    kind: Annotated[Optional[str], typer.Option(help="causal-lm, encoder, encoder-decoder or vision-language.")] = None,
    family: Annotated[Optional[str], typer.Option(help="Model family, e.g. qwen2.5, llama3.1.")] = None,
    quantization: Annotated[
        Optional[str],
        typer.Option(help="Plan at this quantization (none, fp8, int8, awq, gptq): only models the catalog has weights for."),
    ] = None,
    gated: Annotated[Optional[bool], typer.Option("--gated/--no-gated", help="Gated on the hub or not.")] = None,
    search: Annotated[Optional[str], typer.Option(help="Text in the key, name, hub id or family.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Which models fit which GPU, on how many GPUs (tensor parallel), at which quantization."""
    from catalog import fit_queries, queries
    from catalog.render import check_format, render

    check_format(fmt)
    with _reader(db).connect() as conn:
        spec = fit_queries.gpu_spec(conn, gpu, gpu_mem)
        if explain is not None:
            plan, terms = fit_queries.explain(conn, explain, spec, context=context, sequences=seqs,
                                              quantization=quantization, max_gpus=max_gpus)  # fmt: skip
            if fmt == "json":
                _echo(json.dumps({"plan": plan.row(), "terms": [t.__dict__ for t in terms]}, indent=2))
            else:
                _echo(render([t.__dict__ for t in terms], fmt, ["term", "value", "how"]))
            return
        f = queries.ModelFilter(
            licenses=list(license or []), license_family=license_family, min_context=min_context,
            min_params=min_params, max_params=max_params, size=size, category=category, kind=kind,
            family=family, quantization=quantization, gated=gated, search=search,
        )  # fmt: skip
        plans = fit_queries.fit(conn, f, spec, context=context, sequences=seqs, max_gpus=max_gpus)
    rows = [p.row() for p in plans]
    cols = ["id", "quantization", "fits", "gpus", "need_gb", "budget_gb", "weights_gb", "kv_gb", "overhead_gb",
            "context", "note"]  # fmt: skip
    _echo(render(rows, fmt, cols))
    if fmt == "table":
        fits = sum(1 for p in plans if p.fits)
        one = sum(1 for p in plans if p.fits and p.tensor_parallel == 1)
        _echo(f"\n{spec.name} ({spec.usable_gb:.1f} GB usable): {len(plans)} models, {fits} fit "
              f"({one} on one GPU); need_gb and the terms are per GPU")  # fmt: skip


# --------------------------------------------------------------------------- stats and listings


@app.command()
@handles_errors
def stats(db: DbOpt = None, fmt: FormatOpt = "table") -> None:
    """Size-bucket, license and category distributions (from the SQL views)."""
    from catalog import queries
    from catalog.render import check_format, render

    check_format(fmt)
    with _reader(db).connect() as conn:
        result = queries.stats(conn)
    if fmt == "json":
        from catalog.render import _json_default

        _echo(json.dumps(result, indent=2, default=_json_default))
        return
    _echo("\n\n".join(f"{name}:\n{render(rows, fmt)}" for name, rows in result.items()))


@app.command()
@handles_errors
def categories(
    category: Annotated[Optional[str], typer.Argument(help="Show one category in detail.")] = None,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Evaluation categories; with an id, its settings, datasets and member models."""
    from catalog import queries
    from catalog.render import check_format, render, render_pairs

    check_format(fmt)
    with _reader(db).connect() as conn:
        if category is None:
            _echo(render(queries.categories(conn), fmt))
            return
        detail = queries.category_detail(conn, category)
    if fmt == "json":
        from catalog.render import _json_default

        _echo(json.dumps(detail, indent=2, default=_json_default))
        return
    _echo(render_pairs(detail["category"], fmt))
    _echo("\ndatasets:\n" + render(detail["datasets"], fmt, ["dataset_id", "role", "hub_id", "primary_metric"]))
    _echo("\nmodels:\n" + render(detail["models"], fmt, ["id", "hub_id", "params_b", "license_id", "is_primary"]))


@app.command()
@handles_errors
def datasets(db: DbOpt = None, fmt: FormatOpt = "table") -> None:
    """Benchmark datasets with hub id, split, metric and the categories that use them."""
    from catalog import queries
    from catalog.render import check_format, render

    check_format(fmt)
    with _reader(db).connect() as conn:
        _echo(render(queries.datasets(conn), fmt))


@app.command()
@handles_errors
def mapping(
    db: DbOpt = None,
    full: Annotated[bool, typer.Option("--full", help="One row per model, category and dataset.")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Which datasets each model is evaluated on, through its categories."""
    from catalog import queries
    from catalog.render import check_format, render

    check_format(fmt)
    with _reader(db).connect() as conn:
        rows = queries.mapping(conn) if full else queries.mapping_summary(conn)
    _echo(render(rows, fmt))


@app.command()
@handles_errors
def sql(
    statement: Annotated[str, typer.Argument(help="One read-only SQL statement, e.g. a SELECT on a view.")],
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Run one read-only SQL statement; anything that writes is refused."""
    from catalog import queries
    from catalog.render import check_format, render

    check_format(fmt)
    cols, rows = queries.run_sql(_reader(db), statement)
    _echo(render([dict(zip(cols, r)) for r in rows], fmt, cols))


@app.command()
@handles_errors
def export(
    relation: Annotated[str, typer.Argument(help="View or table to export.")] = "model_facets",
    db: DbOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, json or parquet.")] = "csv",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file (default: RELATION.FORMAT).")] = None,
) -> None:
    """Write a view (default model_facets) or table to a CSV, JSON or Parquet file."""
    from catalog.export import export as do_export

    path, rows = do_export(_reader(db), relation, fmt, out)
    _echo(f"wrote {rows} rows of {relation} to {path}")


# --------------------------------------------------------------------------- db


@db_app.command("upgrade")
@handles_errors
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head", db: DbOpt = None
) -> None:
    """Migrate the schema up (default: to the latest revision)."""
    from catalog import db as dbmod

    url = dbmod.resolve_url(db)
    dbmod.upgrade(url, revision)
    _echo(f"{_safe_url(url)}: at revision {dbmod.current_revision(url)}")


@db_app.command("downgrade")
@handles_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' to drop everything.")],
    db: DbOpt = None,
) -> None:
    """Migrate the schema down to REVISION."""
    from catalog import db as dbmod

    url = dbmod.resolve_url(db)
    dbmod.downgrade(url, revision)
    _echo(f"{_safe_url(url)}: at revision {dbmod.current_revision(url) or 'base (empty)'}")


@db_app.command("current")
@handles_errors
def db_current(db: DbOpt = None) -> None:
    """Show the schema revision of the database and the latest one available."""
    from catalog import db as dbmod

    url = dbmod.resolve_url(db)
    current, head = dbmod.current_revision(url), dbmod.head_revision()
    state = "up to date" if current == head else "run `catalog db upgrade`"
    _echo(f"{_safe_url(url)}: at revision {current or 'base (empty)'}; latest is {head} ({state})")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
