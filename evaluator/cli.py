"""`evaluator` command line. Benchmark runs arrive with the evaluator issue; for now it
lists the evaluation plan the catalog already holds (categories and their datasets)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from catalog.cli import DbOpt, FormatOpt, handles_errors

app = typer.Typer(
    name="evaluator",
    help="Evaluate catalog models on benchmarks and record the results in the catalog database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command("list-categories")
@handles_errors
def list_categories(db: DbOpt = None, fmt: FormatOpt = "table") -> None:
    """Evaluation categories with their status and how many models and datasets each has."""
    from catalog import queries
    from catalog.cli import _reader
    from catalog.render import check_format, render

    check_format(fmt)
    with _reader(db).connect() as conn:
        typer.echo(render(queries.categories(conn), fmt))


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", help="Print the version and exit.")] = None,
) -> None:
    if version:
        from importlib.metadata import version as pkg_version

        typer.echo(pkg_version("model-catalog"))
        raise typer.Exit()


def main() -> None:
    app()
