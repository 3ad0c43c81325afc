"""`evaluator` command line: plan and run benchmarks, score outside completions, read results.

Thin: every command resolves options, calls evaluator.runner / external / reports, and
renders. torch, transformers and datasets are imported only once a run really generates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from catalog.cli import DbOpt, FormatOpt, _reader, fail, handles_errors

app = typer.Typer(
    name="evaluator",
    help="Evaluate catalog models on benchmarks and record the results in the catalog database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _split(values: Optional[list[str]]) -> list[str]:
    """Accept both repeated options and comma-separated lists: --models a,b --models c."""
    return [v for item in values or [] for v in item.split(",") if v]


def _samples(value: Optional[str]) -> tuple[Optional[int], bool]:
    if value is None:
        return None, False
    if value == "all":
        return None, True
    if value.isdigit() and int(value) > 0:
        return int(value), False
    fail(f"--samples must be a positive number or 'all' (got {value!r})")
    raise AssertionError  # unreachable


def _writer(db: Optional[str]):  # type: ignore[no-untyped-def]
    from catalog import db as dbmod

    url = dbmod.resolve_url(db)
    if dbmod.current_revision(url) != dbmod.head_revision():
        fail("the database is not at the latest schema; run `catalog seed` (or `catalog db upgrade`) first")
    return dbmod.make_engine(url)


# The options shared by `run` and `enqueue` (the same selection and settings).
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model key, e.g. qwen3_14b.")]
CategoryOpt = Annotated[Optional[str], typer.Option(help="Sweep every model of a category.")]
ModelsOpt = Annotated[Optional[list[str]], typer.Option(help="With --category: only these models (a,b or repeated).")]
ExcludeOpt = Annotated[Optional[list[str]], typer.Option(help="With --category: skip these models.")]
DatasetOpt = Annotated[Optional[list[str]], typer.Option("--dataset", "-d", help="Dataset id (repeatable). Default: the category's primary datasets.")]
OptionalOpt = Annotated[bool, typer.Option(help="Also the category's optional datasets.")]
SamplesOpt = Annotated[Optional[str], typer.Option(help="First N documents, or 'all'. Default: the category's sample limit.")]
PresetOpt = Annotated[Optional[str], typer.Option(help="balanced, performance or memory_optimized (default: the model's).")]
BackendOpt = Annotated[Optional[str], typer.Option(help="hf (transformers), vllm or openai. Default: vllm with a GPU, else hf.")]
BatchOpt = Annotated[Optional[int], typer.Option(help="Prompts per generate call (default: the model's evaluation_batch_size).")]
MaxTokensOpt = Annotated[Optional[int], typer.Option(help="Override the category's max_tokens.")]
TemperatureOpt = Annotated[Optional[float], typer.Option(help="Override the category's temperature (0 = greedy).")]
NumSamplesOpt = Annotated[int, typer.Option(help="Completions per document (pass@k needs temperature > 0).")]
SeedOpt = Annotated[int, typer.Option(help="Sampling seed.")]
ChatOpt = Annotated[Optional[bool], typer.Option("--chat/--no-chat", help="Use the model's chat template (default: when it has one).")]
ModelPathOpt = Annotated[Optional[str], typer.Option(help="Load the weights from this local folder instead of the hub id (openai: the served model name).")]
DataFileOpt = Annotated[Optional[Path], typer.Option(help="Local file (jsonl/json/csv/parquet, upstream schema) for the evaluated split.")]
DataDirOpt = Annotated[Optional[Path], typer.Option(help="Folder with one file per split (test.jsonl, train.jsonl, ...); or one sub-folder per dataset.")]
BaseUrlOpt = Annotated[Optional[str], typer.Option(help="--backend openai: the server's API root, e.g. http://127.0.0.1:8000/v1.")]
ApiKeyEnvOpt = Annotated[Optional[str], typer.Option(help="--backend openai: environment variable holding the API key (default OPENAI_API_KEY, sent when set). The key is never stored or logged.")]
MaxConcurrentOpt = Annotated[int, typer.Option(help="--backend openai: requests in flight at once.")]
RequestTimeoutOpt = Annotated[float, typer.Option(help="--backend openai: seconds before a silent request is retried.")]
ChunkDocsOpt = Annotated[Optional[int], typer.Option(hidden=True, help="Documents per generate-score-write cycle (default: automatic).")]
DryRunOpt = Annotated[bool, typer.Option(help="Print the plan (models x datasets, settings) and touch nothing.")]


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a SLURM job's time limit, a preemption, `kill`) ends a run like Ctrl-C does:
    the run is marked interrupted (a worker's run goes back to the queue)."""
    import signal
    import threading

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)


def _plans(db: Optional[str], model: Optional[str], category: Optional[str], models: Optional[list[str]],
           exclude_models: Optional[list[str]], dataset: Optional[list[str]], include_optional: bool,
           data_file: Optional[Path], data_dir: Optional[Path], opts: Any) -> tuple[list[Any], list[dict[str, str]]]:  # fmt: skip
    """Plan models x datasets; what cannot run is skipped with the reason (a sweep goes on)."""
    from catalog.db import CatalogError
    from evaluator import runner

    if (model is None) == (category is None):
        fail("give exactly one of --model KEY or --category CATEGORY")
    datasets = _split(dataset)
    if data_file is not None and len(datasets) != 1:
        fail("--data-file needs exactly one --dataset (use --data-dir for several)")
    with _reader(db).connect() as conn:
        pairs, skipped = _pairs(conn, model, category, _split(models), _split(exclude_models), datasets,
                                include_optional)  # fmt: skip
        plans = []
        for model_id, dataset_id in pairs:
            try:
                plans.append(runner.plan_run(conn, model_id, dataset_id, opts,
                                             _source(dataset_id, data_file, data_dir)))  # fmt: skip
            except CatalogError as exc:  # one refusal must not hide the rest of a sweep
                if model is not None:
                    raise
                skipped.append({"model": model_id, "dataset": dataset_id, "reason": str(exc)})
    return plans, skipped


def _options(backend: Optional[str], samples: Optional[str], **values: Any) -> Any:
    from catalog.queries import check_choice
    from evaluator import runner
    from evaluator.backends import BACKENDS, default_backend

    backend = backend or default_backend()
    check_choice("backend", backend, BACKENDS)
    if backend == "openai" and not values.get("base_url"):
        fail("--backend openai needs --base-url, the served model's API root (e.g. http://127.0.0.1:8000/v1)")
    if values.get("max_concurrent", 1) < 1:
        fail(f"--max-concurrent must be at least 1 (got {values['max_concurrent']})")
    if values.get("chunk_docs") is not None and values["chunk_docs"] < 1:
        fail(f"--chunk-docs must be at least 1 (got {values['chunk_docs']})")
    count, all_samples = _samples(samples)
    return runner.RunOptions(backend=backend, samples=count, all_samples=all_samples, **values)


@app.command()
@handles_errors
def run(
    model: ModelOpt = None,
    category: CategoryOpt = None,
    models: ModelsOpt = None,
    exclude_models: ExcludeOpt = None,
    dataset: DatasetOpt = None,
    include_optional: OptionalOpt = False,
    samples: SamplesOpt = None,
    preset: PresetOpt = None,
    backend: BackendOpt = None,
    batch_size: BatchOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    num_samples: NumSamplesOpt = 1,
    seed: SeedOpt = 1234,
    chat: ChatOpt = None,
    model_path: ModelPathOpt = None,
    data_file: DataFileOpt = None,
    data_dir: DataDirOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    max_concurrent: MaxConcurrentOpt = 8,
    request_timeout: RequestTimeoutOpt = 120.0,
    chunk_docs: ChunkDocsOpt = None,
    fresh: Annotated[bool, typer.Option(help="Start a new run instead of continuing an unfinished one with the same configuration.")] = False,
    dry_run: DryRunOpt = False,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Evaluate a model (or a category sweep) and record runs, samples and metrics.

    The jobs of a sweep run one after another in this process (each loads its model onto the
    GPUs it is given); for several at once, `evaluator enqueue` them and start one
    `evaluator worker` per GPU or node.
    """
    from catalog.render import check_format, render
    from evaluator import runner

    check_format(fmt)
    opts = _options(
        backend, samples, preset=preset, batch_size=batch_size, max_tokens=max_tokens, temperature=temperature,
        num_samples=num_samples, seed=seed, chat=chat, model_path=model_path, fresh=fresh, base_url=base_url,
        api_key_env=api_key_env, max_concurrent=max_concurrent, request_timeout=request_timeout,
        chunk_docs=chunk_docs,
    )  # fmt: skip
    plans, skipped = _plans(db, model, category, models, exclude_models, dataset, include_optional,
                            data_file, data_dir, opts)  # fmt: skip
    if dry_run:
        _print_plan(plans, skipped, fmt)
        return
    if not plans:
        fail("nothing to run: " + "; ".join(f"{s['model']}/{s['dataset']}: {s['reason']}" for s in skipped))
    engine = _writer(db)
    _interrupt_on_sigterm()
    results = []
    for plan in plans:
        result = runner.execute(engine, plan, runner.default_backend_factory)
        for name, m in result.metrics.items():
            results.append({"run": result.run_id, "model": plan.model["id"], "dataset": plan.dataset["id"],
                            "metric": name, "value": m.value, "stderr": m.stderr, "n": m.n})  # fmt: skip
        if result.resumed_from:
            typer.echo(f"run {result.run_id}: continued after {result.resumed_from} finished samples", err=True)
    typer.echo(render(results, fmt))
    for s in skipped:
        typer.echo(f"skipped {s['model']} on {s['dataset']}: {s['reason']}", err=True)


@app.command()
@handles_errors
def enqueue(
    model: ModelOpt = None,
    category: CategoryOpt = None,
    models: ModelsOpt = None,
    exclude_models: ExcludeOpt = None,
    dataset: DatasetOpt = None,
    include_optional: OptionalOpt = False,
    samples: SamplesOpt = None,
    preset: PresetOpt = None,
    backend: BackendOpt = None,
    batch_size: BatchOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    num_samples: NumSamplesOpt = 1,
    seed: SeedOpt = 1234,
    chat: ChatOpt = None,
    model_path: ModelPathOpt = None,
    data_file: DataFileOpt = None,
    data_dir: DataDirOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    max_concurrent: MaxConcurrentOpt = 8,
    request_timeout: RequestTimeoutOpt = 120.0,
    chunk_docs: ChunkDocsOpt = None,
    dry_run: DryRunOpt = False,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Queue runs (same selection as `run`) for `evaluator worker` processes to execute.

    Each queued run stores its options (eval_run.settings.queue) so that any worker can rebuild
    the plan; a run already queued or in progress with the same options is not queued twice.
    Local paths (--model-path, --data-file, --data-dir) must be visible to the workers.
    """
    from catalog.render import check_format, render
    from evaluator import queue

    check_format(fmt)
    opts = _options(
        backend, samples, preset=preset, batch_size=batch_size, max_tokens=max_tokens, temperature=temperature,
        num_samples=num_samples, seed=seed, chat=chat, model_path=model_path, base_url=base_url,
        api_key_env=api_key_env, max_concurrent=max_concurrent, request_timeout=request_timeout,
        chunk_docs=chunk_docs,
    )  # fmt: skip
    plans, skipped = _plans(db, model, category, models, exclude_models, dataset, include_optional,
                            data_file, data_dir, opts)  # fmt: skip
    if dry_run:
        _print_plan(plans, skipped, fmt)
        return
    if not plans:
        fail("nothing to queue: " + "; ".join(f"{s['model']}/{s['dataset']}: {s['reason']}" for s in skipped))
    engine = _writer(db)
    rows = []
    for plan in plans:
        run_id, new = queue.enqueue(engine, plan, opts)
        rows.append({"run": run_id, "model": plan.model["id"], "dataset": plan.dataset["id"],
                     "backend": plan.backend, "samples": plan.limit or "all",
                     "status": "queued" if new else "already queued"})  # fmt: skip
    typer.echo(render(rows, fmt))
    for s in skipped:
        typer.echo(f"skipped {s['model']} on {s['dataset']}: {s['reason']}", err=True)


@app.command()
@handles_errors
def worker(
    max_runs: Annotated[Optional[int], typer.Option(help="Stop after this many runs.")] = None,
    idle_exit: Annotated[bool, typer.Option(help="Exit when nothing is queued or in progress (instead of waiting for more).")] = False,
    worker_id: Annotated[Optional[str], typer.Option(help="A name for this worker, e.g. $SLURM_ARRAY_JOB_ID_$SLURM_ARRAY_TASK_ID (recorded as NAME@HOST:PID).")] = None,
    heartbeat_timeout: Annotated[float, typer.Option(help="Seconds without a heartbeat after which a run's worker counts as dead and the run goes back to the queue.")] = 120.0,
    heartbeat_interval: Annotated[float, typer.Option(help="Seconds between heartbeats.")] = 15.0,
    poll: Annotated[float, typer.Option(help="Seconds between looks at an empty queue.")] = 10.0,
    max_attempts: Annotated[int, typer.Option(help="A run whose worker died this many times is marked failed, not requeued.")] = 3,
    models: Annotated[Optional[list[str]], typer.Option(help="Only take runs of these models (a,b or repeated), e.g. the 70B ones on 4-GPU tasks.")] = None,
    exclude_models: Annotated[Optional[list[str]], typer.Option(help="Never take runs of these models.")] = None,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Claim queued runs and execute them, one at a time, until stopped (Ctrl-C or SIGTERM puts
    the current run back in the queue). Start one per GPU (or per SLURM array task) against
    one PostgreSQL database; runs of workers that died are returned to the queue."""
    from catalog.render import check_format, render
    from evaluator import queue

    check_format(fmt)
    if heartbeat_interval <= 0 or heartbeat_timeout <= heartbeat_interval:
        fail(f"--heartbeat-timeout ({heartbeat_timeout}) must be longer than --heartbeat-interval ({heartbeat_interval})")
    if worker_id is not None and ("@" in worker_id or not worker_id.strip()):
        fail(f"--worker-id must be a non-empty name without '@' (got {worker_id!r})")
    engine = _writer(db)
    _interrupt_on_sigterm()
    summaries = queue.work(
        engine, worker_id, max_runs=max_runs, idle_exit=idle_exit, poll_s=poll,
        heartbeat_interval=heartbeat_interval, heartbeat_timeout=heartbeat_timeout, max_attempts=max_attempts,
        echo=lambda line: typer.echo(line, err=True), models=_split(models) or None,
        exclude_models=_split(exclude_models) or None,
    )  # fmt: skip
    rows = [{"run": s["run"], "status": s["status"], "model": s.get("model"), "dataset": s.get("dataset"),
             "worker": s["worker"], "error": s.get("error")} for s in summaries]  # fmt: skip
    typer.echo(render(rows, fmt) if rows else "no runs")


def _source(dataset_id: str, data_file: Optional[Path], data_dir: Optional[Path]) -> Any:
    from evaluator.data import DataSource

    if data_dir is not None and (data_dir / dataset_id).is_dir():
        data_dir = data_dir / dataset_id
    return DataSource(data_file=data_file, data_dir=data_dir)


def _pairs(conn: Any, model: Optional[str], category: Optional[str], only: list[str], exclude: list[str],
           datasets: list[str], include_optional: bool) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:  # fmt: skip
    """(model, dataset) pairs to run, and the ones skipped with a reason."""
    from sqlalchemy import text

    from catalog.queries import check_choice
    from evaluator.runner import default_datasets

    if model is not None:
        model_ids = [model]
    else:
        cats = [r[0] for r in conn.execute(text("SELECT id FROM category ORDER BY id"))]
        check_choice("category", category, cats)
        members = [r[0] for r in conn.execute(
            text("SELECT model_id FROM category_model WHERE category_id = :c ORDER BY model_id"), {"c": category})]
        for m in only + exclude:
            check_choice("model in " + str(category), m, members)
        model_ids = [m for m in members if (not only or m in only) and m not in exclude]
    pairs: list[tuple[str, str]] = []
    skipped: list[dict[str, str]] = []
    for m in model_ids:
        if datasets:
            chosen = datasets
        elif category is not None:
            rows = conn.execute(text("SELECT dataset_id, role FROM category_dataset WHERE category_id = :c "
                                     "ORDER BY role DESC, dataset_id"), {"c": category})  # fmt: skip
            chosen = [r.dataset_id for r in rows if include_optional or r.role == "primary"]
        else:
            chosen = default_datasets(conn, m, include_optional)
        if not chosen:
            skipped.append({"model": m, "dataset": "-", "reason": "its category lists no datasets"})
        pairs.extend((m, d) for d in chosen)
    return pairs, skipped


def _print_plan(plans: list[Any], skipped: list[dict[str, str]], fmt: str) -> None:
    from catalog.render import render

    rows = []
    for p in plans:
        d = p.describe()
        rows.append({"model": d["model"], "dataset": d["dataset"], "backend": d["backend"], "preset": d["preset"],
                     "samples": d["samples"], "batch": d["batch_size"], "max_tokens": p.params.max_tokens,
                     "temperature": p.params.temperature, "n": p.params.n, "stop": " | ".join(map(repr, p.params.stop)),
                     "engine": json.dumps(d["engine"])})  # fmt: skip
    typer.echo(render(rows, fmt) if rows else "nothing would run")
    for s in skipped:
        typer.echo(f"would skip {s['model']} on {s['dataset']}: {s['reason']}")


@app.command()
@handles_errors
def score(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset id, e.g. gsm8k.")],
    completions: Annotated[Path, typer.Option(help='JSONL: {"doc_id": ..., "completion": "..."} per line.')],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Catalog model that produced them (optional).")] = None,
    data_file: Annotated[Optional[Path], typer.Option(help="Local file of the dataset's split (upstream schema).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with one file per split.")] = None,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Score completions produced elsewhere; recorded as a run with backend `external`."""
    from catalog.render import check_format, render
    from evaluator.external import check_score_request, score_file
    from evaluator.runner import _tqdm_progress

    check_format(fmt)
    source = _source(dataset, data_file, data_dir)
    with _reader(db).connect() as conn:
        task = check_score_request(conn, dataset, model, source)
    run_id, metrics = score_file(_writer(db), task, completions, source, model, progress=_tqdm_progress)
    typer.echo(render([{"run": run_id, "dataset": dataset, "metric": k, "value": m.value, "stderr": m.stderr,
                        "n": m.n} for k, m in metrics.items()], fmt))  # fmt: skip


@app.command("list-categories")
@handles_errors
def list_categories(db: DbOpt = None, fmt: FormatOpt = "table") -> None:
    """Evaluation categories with their status and how many models and datasets each has."""
    from catalog import queries
    from catalog.render import check_format, render

    check_format(fmt)
    with _reader(db).connect() as conn:
        typer.echo(render(queries.categories(conn), fmt))


@app.command()
@handles_errors
def runs(
    model: Annotated[Optional[str], typer.Option("--model", "-m")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d")] = None,
    status: Annotated[Optional[str], typer.Option(help="queued, running, completed, failed or interrupted.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.")] = 50,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Recorded runs, newest first."""
    from catalog.queries import check_choice
    from catalog.render import check_format, render
    from catalog.vocab import RUN_STATUSES
    from evaluator import reports

    check_format(fmt)
    if status is not None:
        check_choice("status", status, RUN_STATUSES)
    with _reader(db).connect() as conn:
        typer.echo(render(reports.runs(conn, model, dataset, status, limit), fmt))


@app.command()
@handles_errors
def show(
    run_id: Annotated[int, typer.Argument(help="Run id (see `evaluator runs`).")],
    samples: Annotated[int, typer.Option(help="How many samples to show.")] = 5,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """One run: its settings, metrics and first samples."""
    from catalog.render import _json_default, check_format, render, render_pairs
    from evaluator import reports

    check_format(fmt)
    with _reader(db).connect() as conn:
        detail = reports.run_detail(conn, run_id, samples)
    if fmt == "json":
        typer.echo(json.dumps(detail, indent=2, default=_json_default))
        return
    typer.echo(render_pairs({k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                             for k, v in detail["run"].items()}, fmt))  # fmt: skip
    typer.echo("\nmetrics:\n" + render(detail["metrics"], fmt, ["name", "value", "stderr", "n"]))
    for s in detail["samples"]:
        s["completion"] = (s["completion"] or "")[:80].replace("\n", "\\n")
    typer.echo("\nsamples:\n" + render(detail["samples"], fmt))


@app.command()
@handles_errors
def leaderboard(
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m")] = None,
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """The latest completed run per model, dataset and metric, beside published figures."""
    from catalog.render import check_format, render
    from evaluator import reports

    check_format(fmt)
    with _reader(db).connect() as conn:
        typer.echo(render(reports.leaderboard(conn, dataset, model), fmt))


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
