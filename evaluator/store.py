"""Evaluation records in the catalog database: runs, samples, metrics.

Samples are written in batches, each in its own short transaction, as they finish: a crash
or Ctrl-C loses at most the batch in flight, and a rerun with the same configuration
continues where the last one stopped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.engine import Engine

from catalog import schema
from evaluator.tasks.base import MetricValue, SampleScore

RUN: Table = schema.EvalRun.__table__  # type: ignore[attr-defined]
SAMPLE: Table = schema.SampleResult.__table__  # type: ignore[attr-defined]
METRIC: Table = schema.Metric.__table__  # type: ignore[attr-defined]
UNFINISHED = ("running", "interrupted", "failed")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_run(engine: Engine, values: Mapping[str, Any]) -> int:
    with engine.begin() as conn:
        result = conn.execute(RUN.insert().values(**values, started_at=now()).returning(RUN.c.id))
        return int(result.scalar_one())


def find_resumable(engine: Engine, model_id: Optional[str], dataset_id: str, fingerprint: str) -> Optional[int]:
    """The newest unfinished run of the same model, dataset and configuration, if any."""
    stmt = (
        select(RUN.c.id)
        .where(RUN.c.model_id == model_id, RUN.c.dataset_id == dataset_id,
               RUN.c.config_fingerprint == fingerprint, RUN.c.status.in_(UNFINISHED))  # fmt: skip
        .order_by(RUN.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        found = conn.execute(stmt).scalar()
    return int(found) if found is not None else None


def reopen_run(engine: Engine, run_id: int, n_samples: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(RUN).where(RUN.c.id == run_id).values(
            status="running", error=None, finished_at=None, n_samples=n_samples))  # fmt: skip


def done_doc_ids(engine: Engine, run_id: int) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(SAMPLE.c.doc_id).where(SAMPLE.c.run_id == run_id)).scalars())


def write_samples(engine: Engine, run_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
    """One batch of finished samples, in one transaction."""
    if rows:
        with engine.begin() as conn:
            conn.execute(SAMPLE.insert(), [{**r, "run_id": run_id} for r in rows])


def sample_scores(engine: Engine, run_id: int) -> list[SampleScore]:
    """Every stored sample of a run, as scores the task can aggregate (resumed runs included)."""
    stmt = select(SAMPLE.c.extracted, SAMPLE.c.reference, SAMPLE.c.scores, SAMPLE.c.details,
                  SAMPLE.c.error).where(SAMPLE.c.run_id == run_id).order_by(SAMPLE.c.id)  # fmt: skip
    with engine.connect() as conn:
        return [SampleScore(extracted=r.extracted, reference=r.reference or "", scores=r.scores or {},
                            details=r.details or {}, error=r.error) for r in conn.execute(stmt)]  # fmt: skip


def finish_run(
    engine: Engine, run_id: int, metrics: Mapping[str, MetricValue], **values: Any
) -> None:
    """Write the metrics and mark the run completed, atomically."""
    with engine.begin() as conn:
        conn.execute(delete(METRIC).where(METRIC.c.run_id == run_id))
        rows = [{"run_id": run_id, "name": name, "value": m.value, "stderr": m.stderr, "n": m.n}
                for name, m in metrics.items()]  # fmt: skip
        if rows:
            conn.execute(METRIC.insert(), rows)
        conn.execute(update(RUN).where(RUN.c.id == run_id).values(
            status="completed", finished_at=now(), error=None, **values))  # fmt: skip


def mark(engine: Engine, run_id: int, status: str, error: Optional[str] = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(RUN).where(RUN.c.id == run_id).values(status=status, error=error, finished_at=now()))


def count_samples(engine: Engine, run_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SAMPLE).where(SAMPLE.c.run_id == run_id)).scalar_one())
