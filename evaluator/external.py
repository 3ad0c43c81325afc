"""`evaluator score`: score completions produced elsewhere (an API, another harness).

Input is JSONL, one line per document: ``{"doc_id": ..., "completion": "..."}`` (or
``"completions": [...]`` for several samples), where ``doc_id`` is the dataset's own id or
the 0-based row index of its split.  The result is recorded as a run with backend
``external``, exactly like a generated run, so the leaderboard and BI tools see it too.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any, Optional

from sqlalchemy.engine import Connection, Engine

from catalog.db import CatalogError
from evaluator import store
from evaluator.backends.base import Completion
from evaluator.data import DataSource, check_loadable, load_docs
from evaluator.runner import _ids, _row, package_versions, sample_row
from evaluator.tasks import get_task
from evaluator.tasks.base import MetricValue, Task

SCORE_CHUNK = 256


def read_completions(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise CatalogError(f"completions file {str(path)!r} does not exist")
    out: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CatalogError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or "doc_id" not in rec or not ({"completion", "completions"} & rec.keys()):
                raise CatalogError(f'{path}:{lineno}: expected {{"doc_id": ..., "completion": "..."}}')
            texts = rec["completions"] if "completions" in rec else [rec["completion"]]
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise CatalogError(f"{path}:{lineno}: completion(s) must be text")
            key = str(rec["doc_id"])
            if key in out:
                raise CatalogError(f"{path}:{lineno}: doc_id {key!r} appears twice")
            out[key] = texts
    if not out:
        raise CatalogError(f"{path}: no completions")
    return out


def check_score_request(conn: Connection, dataset_id: str, model_id: Optional[str], source: DataSource) -> Task:
    if _row(conn, "SELECT id FROM dataset WHERE id = :id", id=dataset_id) is None:
        raise CatalogError(f"unknown dataset {dataset_id!r}; valid: {', '.join(_ids(conn, 'dataset'))}")
    if model_id is not None and _row(conn, "SELECT id FROM model WHERE id = :id", id=model_id) is None:
        raise CatalogError(f"unknown model {model_id!r}; valid: {', '.join(_ids(conn, 'model'))}")
    needs = _row(conn, "SELECT needs_data_file FROM dataset WHERE id = :id", id=dataset_id)
    task = get_task(dataset_id)
    check_loadable(task, source, bool(needs and needs["needs_data_file"]))
    return task


def score_file(
    engine: Engine, task: Task, completions_path: Path, source: DataSource, model_id: Optional[str] = None,
    progress: Any = None,
) -> tuple[int, dict[str, MetricValue]]:  # fmt: skip
    """Score every line of the completions file and record it as an ``external`` run."""
    completions = read_completions(completions_path)
    docs = {d.doc_id: d for d in load_docs(task, source, None)}
    unknown = [k for k in completions if k not in docs]
    if unknown:
        sample = ", ".join(repr(k) for k in list(docs)[:5])
        raise CatalogError(
            f"{len(unknown)} doc_id(s) not in {task.name}, e.g. {unknown[0]!r}; the dataset's ids look like {sample}"
        )
    digest = hashlib.sha256(completions_path.read_bytes()).hexdigest()
    versions = package_versions()
    fp_parts = {"task": task.fingerprint_parts(), "completions": digest, "data": source.describe(task)}
    run_id = store.create_run(engine, {
        "model_id": model_id, "dataset_id": task.name, "backend": "external", "status": "running",
        "n_samples": len(completions), "samples_per_doc": max(len(v) for v in completions.values()),
        "config_fingerprint": hashlib.sha256(json.dumps(fp_parts, sort_keys=True).encode()).hexdigest()[:32],
        "package_versions": versions, "host": socket.gethostname(),
        "settings": {"completions_file": str(completions_path), "completions_sha256": digest,
                     "data": source.describe(task), "task": task.fingerprint_parts(), "harness": task.harness,
                     **task.run_settings()},
    })  # fmt: skip
    primary = task.metrics[0]
    items = [(docs[k], v) for k, v in completions.items()]
    bar = progress(len(items), f"score {task.name}") if progress else None
    try:
        with store.recording_outcome(engine, run_id, interrupted="interrupted by the user (Ctrl-C)"):
            for start in range(0, len(items), SCORE_CHUNK):
                chunk = items[start : start + SCORE_CHUNK]
                scores = task.score_many(chunk)
                rows = []
                for (doc, texts), score in zip(chunk, scores):
                    fake = [Completion(text=t, tokens=0, prompt_tokens=0, finish_reason="external") for t in texts]
                    row = sample_row(doc, task.prompt(doc).text, fake, score, primary, 0.0)
                    row.update(tokens=None, prompt_tokens=None, finish_reason=None, latency_s=None)
                    rows.append(row)
                store.write_samples(engine, run_id, rows)
                if bar is not None:
                    bar.update(len(chunk))
            metrics = task.aggregate(store.sample_scores(engine, run_id))
            store.finish_run(engine, run_id, metrics)
    finally:
        if bar is not None:
            bar.close()
    return run_id, metrics
