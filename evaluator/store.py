"""Evaluation records in the catalog database: runs, samples, metrics.

Samples are written in batches, each in its own short transaction, as they finish: a crash
or Ctrl-C loses at most the batch in flight, and a rerun with the same configuration
continues where the last one stopped.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.engine import Connection, Engine

from catalog import schema
from catalog.db import CatalogError
from evaluator.tasks.base import MetricValue, SampleScore

RUN: Table = schema.EvalRun.__table__  # type: ignore[attr-defined]
SAMPLE: Table = schema.SampleResult.__table__  # type: ignore[attr-defined]
METRIC: Table = schema.Metric.__table__  # type: ignore[attr-defined]
UNFINISHED = ("running", "interrupted", "failed")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class RunLost(CatalogError):
    """Another process owns the run now (this one's heartbeat lapsed and the run was taken over)."""


def db_now(conn: Connection) -> dt.datetime:
    """The time heartbeats are written and compared in: the PostgreSQL server's clock (one clock
    for every node of a cluster), or this machine's for SQLite (one machine anyway)."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(select(func.now())).scalar_one()
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return now()


def _check_owner(conn: Connection, run_id: int, owner: Optional[str]) -> None:
    """Inside a write transaction: refuse when ``owner`` no longer owns the run (row locked on
    PostgreSQL until the transaction ends, so a takeover cannot slip in between)."""
    if owner is None:
        return
    current = conn.execute(select(RUN.c.worker_id).where(RUN.c.id == run_id).with_for_update()).scalar()
    if current != owner:
        raise RunLost(f"run {run_id} now belongs to {current or 'the queue'}, not {owner} (its heartbeat "
                      "lapsed and the run was taken over); nothing more was written by this process")


def create_run(engine: Engine, values: Mapping[str, Any]) -> int:
    with engine.begin() as conn:
        result = conn.execute(RUN.insert().values(**values, started_at=now()).returning(RUN.c.id))
        return int(result.scalar_one())


def done_doc_ids(engine: Engine, run_id: int) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(SAMPLE.c.doc_id).where(SAMPLE.c.run_id == run_id)).scalars())


def write_samples(engine: Engine, run_id: int, rows: Sequence[Mapping[str, Any]], owner: Optional[str] = None) -> None:
    """One batch of finished samples, in one transaction (only while ``owner`` owns the run)."""
    if rows:
        with engine.begin() as conn:
            _check_owner(conn, run_id, owner)
            conn.execute(SAMPLE.insert(), [{**r, "run_id": run_id} for r in rows])


def sample_scores(engine: Engine, run_id: int) -> list[SampleScore]:
    """Every stored sample of a run, as scores the task can aggregate (resumed runs included)."""
    stmt = select(SAMPLE.c.extracted, SAMPLE.c.reference, SAMPLE.c.scores, SAMPLE.c.details,
                  SAMPLE.c.error).where(SAMPLE.c.run_id == run_id).order_by(SAMPLE.c.id)  # fmt: skip
    with engine.connect() as conn:
        return [SampleScore(extracted=r.extracted, reference=r.reference or "", scores=r.scores or {},
                            details=r.details or {}, error=r.error) for r in conn.execute(stmt)]  # fmt: skip


def finish_run(
    engine: Engine, run_id: int, metrics: Mapping[str, MetricValue], *, owner: Optional[str] = None, **values: Any
) -> None:
    """Write the metrics and mark the run completed, atomically (only while ``owner`` owns it)."""
    with engine.begin() as conn:
        _check_owner(conn, run_id, owner)
        conn.execute(delete(METRIC).where(METRIC.c.run_id == run_id))
        rows = [{"run_id": run_id, "name": name, "value": m.value, "stderr": m.stderr, "n": m.n}
                for name, m in metrics.items()]  # fmt: skip
        if rows:
            conn.execute(METRIC.insert(), rows)
        conn.execute(update(RUN).where(RUN.c.id == run_id).values(
            status="completed", finished_at=now(), error=None, **values))  # fmt: skip


def mark(engine: Engine, run_id: int, status: str, error: Optional[str] = None, owner: Optional[str] = None) -> bool:
    """Set the run's status; with ``owner``, only while that process still owns the run (a process
    whose run was taken over must not mark the new owner's run failed). True when it was set."""
    stmt = update(RUN).where(RUN.c.id == run_id)
    if owner is not None:
        stmt = stmt.where(RUN.c.worker_id == owner)
    with engine.begin() as conn:
        return conn.execute(stmt.values(status=status, error=error, finished_at=now())).rowcount == 1


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


@contextmanager
def recording_outcome(engine: Engine, run_id: int, owner: Optional[str] = None,
                      interrupted: str = "interrupted by the user (Ctrl-C); rerun to continue") -> Iterator[None]:  # fmt: skip
    """Mark the run ``interrupted`` on Ctrl-C and ``failed`` on any error, then re-raise:
    a run is never left ``running`` by a process that is still alive to say otherwise."""
    try:
        yield
    except KeyboardInterrupt:
        mark(engine, run_id, "interrupted", interrupted, owner=owner)
        raise
    except BaseException as exc:
        mark(engine, run_id, "failed", describe_error(exc), owner=owner)
        raise


def resume_candidates(engine: Engine, model_id: Optional[str], dataset_id: str, fingerprint: str) -> list[dict[str, Any]]:
    """Unfinished runs of the same model, dataset and configuration, newest first, with who ran them."""
    stmt = (
        select(RUN.c.id, RUN.c.status, RUN.c.worker_id, RUN.c.heartbeat_at)
        .where(RUN.c.model_id == model_id, RUN.c.dataset_id == dataset_id,
               RUN.c.config_fingerprint == fingerprint, RUN.c.status.in_(UNFINISHED))  # fmt: skip
        .order_by(RUN.c.id.desc())
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def take_over(engine: Engine, run_id: int, status: str, previous_worker: Optional[str], worker: str,
              values: Optional[Mapping[str, Any]] = None) -> bool:  # fmt: skip
    """Make ``worker`` the run's owner if it is still as we saw it (same status and owner):
    compare-and-set, so of two processes resuming the same dead run only one gets it."""
    with engine.begin() as conn:
        stamp = db_now(conn)
        result = conn.execute(
            update(RUN)
            .where(RUN.c.id == run_id, RUN.c.status == status, RUN.c.worker_id.is_not_distinct_from(previous_worker))
            .values(status="running", worker_id=worker, heartbeat_at=stamp, claimed_at=stamp, error=None,
                    finished_at=None, attempts=RUN.c.attempts + 1, **dict(values or {}))  # fmt: skip
        )
        return result.rowcount == 1


def update_run(engine: Engine, run_id: int, values: Mapping[str, Any], owner: Optional[str] = None) -> None:
    with engine.begin() as conn:
        _check_owner(conn, run_id, owner)
        conn.execute(update(RUN).where(RUN.c.id == run_id).values(**values))


def run_row(engine: Engine, run_id: int) -> Optional[dict[str, Any]]:
    with engine.connect() as conn:
        row = conn.execute(select(RUN).where(RUN.c.id == run_id)).mappings().first()
    return dict(row) if row is not None else None


def delete_samples(engine: Engine, run_id: int) -> int:
    with engine.begin() as conn:
        return int(conn.execute(delete(SAMPLE).where(SAMPLE.c.run_id == run_id)).rowcount)


def count_samples(engine: Engine, run_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SAMPLE).where(SAMPLE.c.run_id == run_id)).scalar_one())
