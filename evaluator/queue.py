"""The run queue: ``evaluator enqueue`` writes queued runs, ``evaluator worker`` processes take them.

Ownership
    Every run in progress has an owner, ``eval_run.worker_id`` = ``NAME@HOST:PID`` (NAME is
    ``--worker-id``, or ``worker`` / ``run``), and a heartbeat: a background thread refreshes
    ``heartbeat_at`` every ``heartbeat_interval`` seconds while the run is in progress (model
    loading included).  A run's owner is *dead* when its heartbeat is older than the heartbeat
    timeout, or at once when it ran on this very host and its PID no longer exists (a SIGKILLed
    process is seen without waiting).  Heartbeat times come from the database server's clock on
    PostgreSQL, so clock skew between cluster nodes does not matter.

Claims
    PostgreSQL: ``SELECT id ... WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP
    LOCKED`` and the update to ``running`` in one transaction: concurrent workers each lock a
    different row, never wait on each other and never get the same run.  SQLite has no row locks
    (every write locks the whole file, and file locks are unreliable on the network filesystems
    cluster nodes share), so there the worker is meant for one process; it says so once.

Dead workers
    Before each claim a worker returns runs whose owner is dead to the queue (``queued``, owner
    cleared; the samples already written stay, so the next worker generates only the missing
    documents); a run claimed ``max_attempts`` times is marked ``failed`` instead (a model that
    kills its worker every time, e.g. out of memory, must not take down the whole array).
    Every write of samples and the final metrics first checks, under a row lock, that the
    writer still owns the run: a worker that was only frozen (not dead) and comes back after its
    run was handed on writes nothing more (``store.RunLost``).

Test hook
    ``EVALUATOR_BACKEND_FACTORY=module:function`` makes ``runner.default_backend_factory`` build
    backends with ``function(plan)`` instead; the tests use it to inject fast or slowed-down
    backends into real ``evaluator run`` / ``evaluator worker`` processes.  It is not meant for
    production use.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from evaluator import store

log = logging.getLogger("evaluator.queue")

HEARTBEAT_INTERVAL_S = 15.0
HEARTBEAT_TIMEOUT_S = 120.0  # eight missed heartbeats
MAX_ATTEMPTS = 3
SQLITE_NOTE = (
    "note: this database is SQLite, so run one worker at a time: claiming runs safely from many "
    "processes needs PostgreSQL's row locks (SELECT ... FOR UPDATE SKIP LOCKED); SQLite locks the "
    "whole file for every write, and its file locks are unreliable on the network filesystems "
    "cluster nodes share. Use --db postgresql+psycopg://... for several workers."
)
RUN = store.RUN


def worker_name(name: Optional[str] = None) -> str:
    """``NAME@HOST:PID``: who owns a run, and where to check that it is still alive."""
    return f"{name or 'run'}@{socket.gethostname()}:{os.getpid()}"


def _pid_gone(worker_id: Optional[str]) -> bool:
    """True when ``worker_id`` names a process on this host that no longer exists (or is a zombie)."""
    if not worker_id or "@" not in worker_id:
        return False
    host, _, pid_text = worker_id.rpartition("@")[2].rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    try:  # a killed child its parent has not reaped yet still answers kill(0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def is_alive(worker_id: Optional[str], heartbeat_at: Optional[dt.datetime], now: dt.datetime, timeout: float) -> bool:
    """Whether the owner of a run in progress may still be working on it."""
    if worker_id is None or heartbeat_at is None:
        return False  # never heartbeated: a run from before the queue existed, or one that died at once
    if heartbeat_at.tzinfo is None:
        heartbeat_at = heartbeat_at.replace(tzinfo=dt.timezone.utc)
    if (now - heartbeat_at).total_seconds() > timeout:
        return False
    return not _pid_gone(worker_id)


class Heartbeat:
    """A daemon thread that refreshes the run's heartbeat_at while its owner works on it.

    ``lost`` becomes True when the run no longer belongs to ``worker`` (it was taken over);
    writes check ownership themselves, so this is informative.
    """

    def __init__(self, engine: Engine, run_id: int, worker: str, interval: float = HEARTBEAT_INTERVAL_S) -> None:
        self.engine, self.run_id, self.worker, self.interval = engine, run_id, worker, interval
        self.lost = False
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id}", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def beat(self) -> bool:
        with self.engine.begin() as conn:
            stamp = store.db_now(conn)
            result = conn.execute(update(RUN).where(RUN.c.id == self.run_id, RUN.c.worker_id == self.worker)
                                  .values(heartbeat_at=stamp))  # fmt: skip
        self.beats += 1
        return result.rowcount == 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.beat():
                    self.lost = True
                    log.warning("run %s: taken over by another process; heartbeat stopped", self.run_id)
                    return
            except Exception as exc:  # a database hiccup: try again at the next beat
                log.warning("run %s: heartbeat failed (%s); retrying", self.run_id, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)


def resume(engine: Engine, model_id: str, dataset_id: str, fingerprint: str, worker: str,
           timeout: float = HEARTBEAT_TIMEOUT_S, values: Optional[Mapping[str, Any]] = None) -> Optional[int]:  # fmt: skip
    """Take over the newest unfinished run of this configuration whose owner is not alive:
    an interrupted or failed run, or a ``running`` one whose process died. A run another live
    process is working on is left alone (the caller starts a new run instead)."""
    for cand in store.resume_candidates(engine, model_id, dataset_id, fingerprint):
        if cand["status"] == "running":
            with engine.connect() as conn:
                now = store.db_now(conn)
            if is_alive(cand["worker_id"], cand["heartbeat_at"], now, timeout):
                log.info("run %s is in progress in %s; not resuming it", cand["id"], cand["worker_id"])
                continue
        if store.take_over(engine, cand["id"], cand["status"], cand["worker_id"], worker, values):
            return int(cand["id"])
    return None


# -- the queue ----------------------------------------------------------------------------------


def queue_settings(opts: Any, source: Any) -> dict[str, Any]:
    """What a worker needs to rebuild the plan: the RunOptions and the data source, as JSON.
    Local paths are made absolute (workers may start elsewhere); never an API key (only the
    name of the variable that holds it)."""
    options = asdict(opts)
    options["fresh"] = False
    if options.get("model_path") and Path(options["model_path"]).exists():
        options["model_path"] = str(Path(options["model_path"]).resolve())

    def _path(p: Optional[Path]) -> Optional[str]:
        return str(Path(p).resolve()) if p is not None else None

    return {"options": options, "data_file": _path(source.data_file), "data_dir": _path(source.data_dir)}


def enqueue(engine: Engine, plan: Any, opts: Any) -> tuple[int, bool]:
    """A queued run for ``plan``; (run id, False) when the same run is already queued or in progress."""
    spec = queue_settings(opts, plan.source)
    with engine.begin() as conn:
        rows = conn.execute(select(RUN.c.id, RUN.c.settings).where(
            RUN.c.model_id == plan.model["id"], RUN.c.dataset_id == plan.dataset["id"],
            RUN.c.status.in_(("queued", "running")))).all()  # fmt: skip
        for r in rows:
            if (r.settings or {}).get("queue") == spec:
                return int(r.id), False
        run_id = conn.execute(RUN.insert().values(
            model_id=plan.model["id"], dataset_id=plan.dataset["id"], backend=plan.backend,
            preset=plan.preset["id"], status="queued", n_samples=plan.limit or 0,
            samples_per_doc=plan.params.n, seed=plan.params.seed, generation_params=plan.params.as_dict(),
            config_fingerprint="", settings={"queue": spec, "category": plan.category["id"]}, attempts=0,
        ).returning(RUN.c.id)).scalar_one()  # fmt: skip
    return int(run_id), True


def claim(engine: Engine, worker: str, models: Optional[list[str]] = None,
          exclude_models: Optional[list[str]] = None) -> Optional[int]:  # fmt: skip
    """The oldest queued run (of ``models``, not of ``exclude_models``), now ``running`` and owned
    by ``worker``; None when none is queued."""
    with engine.begin() as conn:
        stmt = select(RUN.c.id).where(RUN.c.status == "queued").order_by(RUN.c.id).limit(1)
        if models:
            stmt = stmt.where(RUN.c.model_id.in_(models))
        if exclude_models:
            stmt = stmt.where(RUN.c.model_id.not_in(exclude_models))
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        run_id = conn.execute(stmt).scalar()
        if run_id is None:
            return None
        stamp = store.db_now(conn)
        done = conn.execute(update(RUN).where(RUN.c.id == run_id, RUN.c.status == "queued").values(
            status="running", worker_id=worker, claimed_at=stamp, heartbeat_at=stamp, error=None,
            finished_at=None, attempts=RUN.c.attempts + 1))  # fmt: skip
        return int(run_id) if done.rowcount == 1 else None


def requeue_dead(engine: Engine, timeout: float = HEARTBEAT_TIMEOUT_S, max_attempts: int = MAX_ATTEMPTS) -> list[dict[str, Any]]:
    """Return queue runs whose worker died to the queue (or fail them after ``max_attempts``)."""
    handled = []
    with engine.connect() as conn:
        now = store.db_now(conn)
        rows = conn.execute(select(RUN.c.id, RUN.c.worker_id, RUN.c.heartbeat_at, RUN.c.attempts, RUN.c.settings)
                            .where(RUN.c.status == "running")).mappings().all()  # fmt: skip
    for r in rows:
        if "queue" not in (r["settings"] or {}) or is_alive(r["worker_id"], r["heartbeat_at"], now, timeout):
            continue  # `evaluator run` runs are resumed by rerunning them, not by workers
        give_up = r["attempts"] >= max_attempts
        values: dict[str, Any] = (
            {"status": "failed", "finished_at": store.now(),
             "error": f"its worker {r['worker_id']} died {r['attempts']} times (heartbeat lost); not retried"}
            if give_up else {"status": "queued", "worker_id": None, "claimed_at": None}
        )  # fmt: skip
        with engine.begin() as conn:
            changed = conn.execute(update(RUN).where(RUN.c.id == r["id"], RUN.c.status == "running",
                                                     RUN.c.worker_id == r["worker_id"]).values(**values)).rowcount  # fmt: skip
        if changed:
            handled.append({"run": r["id"], "worker": r["worker_id"], "to": values["status"]})
    return handled


def release(engine: Engine, run_id: int, worker: str) -> bool:
    """Put a run this worker owns back in the queue (Ctrl-C or SIGTERM: another worker continues it)."""
    with engine.begin() as conn:
        return conn.execute(update(RUN).where(RUN.c.id == run_id, RUN.c.worker_id == worker).values(
            status="queued", worker_id=None, claimed_at=None, error=None, finished_at=None)).rowcount == 1  # fmt: skip


def outstanding(engine: Engine, models: Optional[list[str]] = None,
                exclude_models: Optional[list[str]] = None) -> tuple[int, int]:  # fmt: skip
    """(queued runs, queue runs in progress) this worker could take: a worker with --idle-exit
    stops when both are 0, so that it is still there to pick up a run whose worker dies."""
    stmt = select(RUN.c.status, RUN.c.settings).where(RUN.c.status.in_(("queued", "running")))
    if models:
        stmt = stmt.where(RUN.c.model_id.in_(models))
    if exclude_models:
        stmt = stmt.where(RUN.c.model_id.not_in(exclude_models))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    queued = sum(1 for r in rows if r.status == "queued")
    running = sum(1 for r in rows if r.status == "running" and "queue" in (r.settings or {}))
    return queued, running


def plan_for(engine: Engine, run_id: int) -> Any:
    """Rebuild the plan of a queued run from its stored settings."""
    from evaluator.data import DataSource
    from evaluator.runner import RunOptions, plan_run

    row = store.run_row(engine, run_id)
    if row is None or "queue" not in (row["settings"] or {}):
        raise store.CatalogError(f"run {run_id} was not queued by `evaluator enqueue`")
    spec = row["settings"]["queue"]
    known = set(RunOptions.__dataclass_fields__)
    opts = RunOptions(**{k: v for k, v in spec["options"].items() if k in known})
    source = DataSource(data_file=Path(spec["data_file"]) if spec.get("data_file") else None,
                        data_dir=Path(spec["data_dir"]) if spec.get("data_dir") else None)  # fmt: skip
    with engine.connect() as conn:
        return plan_run(conn, row["model_id"], row["dataset_id"], opts, source)


def work(
    engine: Engine,
    name: Optional[str] = None,
    *,
    max_runs: Optional[int] = None,
    idle_exit: bool = False,
    poll_s: float = 10.0,
    heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S,
    max_attempts: int = MAX_ATTEMPTS,
    backend_factory: Optional[Callable[[Any], Any]] = None,
    echo: Callable[[str], None] = print,
    models: Optional[list[str]] = None,
    exclude_models: Optional[list[str]] = None,
) -> list[dict[str, Any]]:
    """Claim and execute queued runs until ``max_runs`` are done, or (``idle_exit``) nothing is
    queued or in progress any more. Returns one summary per run it worked on."""
    from evaluator import runner

    worker = worker_name(name or "worker")
    factory = backend_factory or runner.default_backend_factory
    if engine.dialect.name == "sqlite":
        echo(SQLITE_NOTE)
    done: list[dict[str, Any]] = []
    stop = threading.Event()
    while max_runs is None or len(done) < max_runs:
        for r in requeue_dead(engine, heartbeat_timeout, max_attempts):
            echo(f"{worker}: run {r['run']} of dead worker {r['worker']} -> {r['to']}")
        run_id = claim(engine, worker, models, exclude_models)
        if run_id is None:
            queued, running = outstanding(engine, models, exclude_models)
            if idle_exit and queued == 0 and running == 0:
                echo(f"{worker}: the queue is empty; exiting")
                break
            stop.wait(min(poll_s, heartbeat_timeout / 2) if running else poll_s)
            continue
        echo(f"{worker}: claimed run {run_id}")
        summary: dict[str, Any] = {"run": run_id, "worker": worker}
        try:
            plan = plan_for(engine, run_id)
            result = runner.execute(engine, plan, factory, progress=None, run_id=run_id, worker_id=worker,
                                    heartbeat_interval=heartbeat_interval, heartbeat_timeout=heartbeat_timeout)  # fmt: skip
            summary.update(status="completed", model=plan.model["id"], dataset=plan.dataset["id"],
                           resumed_from=result.resumed_from,
                           metrics={k: m.value for k, m in result.metrics.items()})  # fmt: skip
            echo(f"{worker}: run {run_id} completed ({plan.model['id']} on {plan.dataset['id']})")
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (a SLURM job's end): hand the run on, then stop
            if release(engine, run_id, worker):
                echo(f"{worker}: stopped; run {run_id} is back in the queue")
            raise
        except store.RunLost as exc:
            summary.update(status="lost", error=str(exc))
            echo(f"{worker}: {exc}")
        except Exception as exc:  # one bad run must not stop the worker; execute marked it failed
            store.mark(engine, run_id, "failed", store.describe_error(exc), owner=worker)
            summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            echo(f"{worker}: run {run_id} failed: {type(exc).__name__}: {exc}")
        done.append(summary)
    return done


def count_by_status(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {r[0]: int(r[1]) for r in conn.execute(select(RUN.c.status, func.count()).group_by(RUN.c.status))}
