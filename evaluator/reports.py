"""Read-side SQL for `evaluator runs | show | leaderboard` (no printing here)."""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import text
from sqlalchemy.engine import Connection

from catalog.db import CatalogError


def _rows(conn: Connection, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def runs(conn: Connection, model: Optional[str] = None, dataset: Optional[str] = None,
         status: Optional[str] = None, limit: int = 50) -> list[dict[str, Any]]:  # fmt: skip
    """Newest runs first, with how many samples they hold and their primary metric."""
    return _rows(conn, """
        SELECT r.id, r.model_id, r.dataset_id, r.backend, r.status, r.n_samples,
               (SELECT COUNT(*) FROM sample_result s WHERE s.run_id = r.id) AS done,
               (SELECT AVG(s.score) FROM sample_result s WHERE s.run_id = r.id) AS primary_score,
               r.started_at, r.finished_at
        FROM eval_run r
        WHERE (:model IS NULL OR r.model_id = :model)
          AND (:dataset IS NULL OR r.dataset_id = :dataset)
          AND (:status IS NULL OR r.status = :status)
        ORDER BY r.id DESC LIMIT :limit""", model=model, dataset=dataset, status=status, limit=limit)  # fmt: skip


def run_detail(conn: Connection, run_id: int, samples: int = 5) -> dict[str, Any]:
    run = _rows(conn, "SELECT * FROM eval_run WHERE id = :id", id=run_id)
    if not run:
        recent = [str(r["id"]) for r in _rows(conn, "SELECT id FROM eval_run ORDER BY id DESC LIMIT 10")]
        hint = f"; recent runs: {', '.join(recent)}" if recent else "; there are no runs yet"
        raise CatalogError(f"unknown run {run_id}{hint}")
    return {
        "run": run[0],
        "metrics": _rows(conn, "SELECT name, value, stderr, n FROM metric WHERE run_id = :id ORDER BY name", id=run_id),
        "samples": _rows(conn, """SELECT doc_id, score, extracted, reference, finish_reason, tokens, error,
                                  completion FROM sample_result WHERE run_id = :id ORDER BY id LIMIT :n""",
                         id=run_id, n=samples),
    }  # fmt: skip


def leaderboard(conn: Connection, dataset: Optional[str] = None, model: Optional[str] = None) -> list[dict[str, Any]]:
    return _rows(conn, """
        SELECT model_id, dataset_id, metric, value, stderr, n, published_value, run_id, finished_at
        FROM leaderboard
        WHERE (:dataset IS NULL OR dataset_id = :dataset) AND (:model IS NULL OR model_id = :model)
        ORDER BY dataset_id, metric, value DESC, model_id""", dataset=dataset, model=model)  # fmt: skip
