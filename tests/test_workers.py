"""`evaluator enqueue` + several `evaluator worker` processes on the real PostgreSQL server:
every queued run done exactly once; a killed worker's run goes back to the queue and another
worker finishes it; a frozen worker whose heartbeat lapsed loses its run and writes nothing more.

The workers use a fake, fast backend through the test hook
EVALUATOR_BACKEND_FACTORY=tests.test_workers:fake_backend (see evaluator/queue.py): the queue,
not the model, is under test here (tests/test_resume.py runs the real tiny model).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from sqlalchemy import text

from catalog import db as dbmod
from catalog import fixtures as fx
from evaluator.backends.base import Completion, GenerationParams

from .conftest import ROOT, console_script, new_database, run_cli

DATA = Path(__file__).resolve().parent / "data"
HOOK = "tests.test_workers:fake_backend"


class FakeBackend:
    """Answers every prompt at once (after FAKE_BACKEND_DELAY_S per generate call)."""

    name = "fake"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def render_chat(self, messages: list[dict[str, str]]) -> Optional[str]:
        return None

    def generate(self, prompts: Any, params: GenerationParams) -> list[list[Completion]]:
        time.sleep(self.delay)
        return [[Completion(text=" The answer is 42.", tokens=5, prompt_tokens=len(p) // 4, finish_reason="stop")
                 for _ in range(params.n)] for p in prompts]  # fmt: skip

    def engine_args(self) -> dict[str, Any]:
        return {"fake": True, "pid": os.getpid()}

    def peak_memory_gb(self) -> Optional[float]:
        return None

    def close(self) -> None:
        pass


def fake_backend(plan: Any) -> FakeBackend:
    """TEST HOOK target (EVALUATOR_BACKEND_FACTORY)."""
    return FakeBackend(float(os.environ.get("FAKE_BACKEND_DELAY_S", "0.2")))


def _seed(url: str) -> None:
    dbmod.upgrade(url)
    engine = dbmod.make_engine(url)
    fx.seed(engine, fx.read_files(fx.builtin_fixture_files()))
    engine.dispose()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    for url in new_database(request, "postgresql", tmp_path):
        _seed(url)
        yield url


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    for url in new_database(request, "sqlite", tmp_path):
        _seed(url)
        yield url


MODEL = "qwen3_14b"  # a real catalog row; the fake backend never loads it


def _enqueue(url: str, *args: str) -> list[int]:
    proc = run_cli(console_script("evaluator"), "enqueue", "--model", MODEL, "--backend", "hf", "--data-dir", str(DATA),
                   "--chunk-docs", "1", "-f", "json", "--db", url, *args)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    import json

    return [r["run"] for r in json.loads(proc.stdout) if r["status"] == "queued"]


def _worker(url: str, name: str, *args: str, delay: float = 0.2) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "CATALOG_DB_URL"}
    env.update(PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), EVALUATOR_BACKEND_FACTORY=HOOK,
               FAKE_BACKEND_DELAY_S=str(delay))  # fmt: skip
    return subprocess.Popen([console_script("evaluator"), "worker", "--worker-id", name, "--poll", "0.3",
                             "--heartbeat-interval", "0.3", "--db", url, *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _q(url: str, sql: str, **params: Any) -> list[Any]:
    engine = dbmod.make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).fetchall()
    engine.dispose()
    return rows


def _wait_for_samples(url: str, run_id: int, proc: subprocess.Popen[str], n: int = 1, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _q(url, "SELECT COUNT(*) FROM sample_result WHERE run_id = :r", r=run_id)[0][0] < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the worker wrote no samples: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)


def test_three_workers_do_every_queued_run_exactly_once(pg_url: str) -> None:
    url = pg_url
    queued = _enqueue(url, "--dataset", "gsm8k,medqa,arc_challenge,mmlu", "--samples", "3")
    queued += _enqueue(url, "--dataset", "gsm8k,medqa,arc_challenge,mmlu", "--samples", "4")
    assert len(queued) == 8
    assert _enqueue(url, "--dataset", "gsm8k", "--samples", "3") == []  # already queued: not twice
    workers = [_worker(url, f"w{i}", "--idle-exit") for i in range(3)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
        assert "SQLite" not in err
    claims = Counter(int(m) for _, err in outputs for m in re.findall(r": claimed run (\d+)", err))
    assert sorted(claims) == sorted(queued) and set(claims.values()) == {1}  # each run claimed exactly once
    rows = _q(url, "SELECT id, status, attempts, worker_id, heartbeat_at, n_samples, config_fingerprint FROM eval_run")
    assert {(r.status, r.attempts) for r in rows} == {("completed", 1)} and len(rows) == 8
    assert all(r.heartbeat_at is not None and r.config_fingerprint for r in rows)
    assert len({r.worker_id.split("@")[0] for r in rows}) >= 2  # the work was shared
    counts = _q(url, "SELECT run_id, COUNT(*), COUNT(DISTINCT doc_id) FROM sample_result GROUP BY run_id")
    assert {r.run_id: (r[1], r[2]) for r in counts} == {r.id: (r.n_samples, r.n_samples) for r in rows}
    assert {r.n_samples for r in rows} == {3, 4}


def test_a_killed_workers_run_is_finished_by_another(pg_url: str) -> None:
    url = pg_url
    (run_id,) = _enqueue(url, "--dataset", "gsm8k", "--samples", "5")
    a = _worker(url, "wa", "--max-runs", "1", delay=1.0)
    _wait_for_samples(url, run_id, a)
    a.send_signal(signal.SIGKILL)
    a.communicate(timeout=30)
    before = {r.doc_id: r.id for r in _q(url, "SELECT doc_id, id FROM sample_result WHERE run_id = :r", r=run_id)}
    assert _q(url, "SELECT status FROM eval_run WHERE id = :r", r=run_id)[0][0] == "running"
    b = _worker(url, "wb", "--idle-exit", "--heartbeat-timeout", "60")
    out, err = b.communicate(timeout=120)
    assert b.returncode == 0, err
    # a died on this host: seen at once from its PID, without waiting for the 60 s timeout
    assert f"run {run_id} of dead worker wa@" in err and f"claimed run {run_id}" in err
    ((status, attempts, worker),) = _q(url, "SELECT status, attempts, worker_id FROM eval_run WHERE id = :r", r=run_id)
    assert status == "completed" and attempts == 2 and worker.startswith("wb@")
    after = {r.doc_id: r.id for r in _q(url, "SELECT doc_id, id FROM sample_result WHERE run_id = :r", r=run_id)}
    assert len(after) == 5 and {k: after[k] for k in before} == before  # a's samples kept, the rest by b


def test_a_frozen_worker_loses_its_run_after_the_heartbeat_timeout(pg_url: str) -> None:
    """SIGSTOP: the process is alive but silent (a hung node). After --heartbeat-timeout another
    worker takes the run over; when the frozen one wakes up it writes nothing more."""
    url = pg_url
    (run_id,) = _enqueue(url, "--dataset", "gsm8k", "--samples", "5")
    a = _worker(url, "wa", "--max-runs", "1", delay=1.0)
    _wait_for_samples(url, run_id, a)
    a.send_signal(signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        b = _worker(url, "wb", "--idle-exit", "--heartbeat-timeout", "3", delay=0.05)
        out, err = b.communicate(timeout=120)
        assert b.returncode == 0, err
        assert time.monotonic() - stopped >= 3  # not before the timeout: a's PID is alive
        assert f"run {run_id} of dead worker wa@" in err and f"claimed run {run_id}" in err
    finally:
        a.send_signal(signal.SIGCONT)
    a_out, a_err = a.communicate(timeout=60)
    assert a.returncode == 0, a_err
    assert f"run {run_id} now belongs to wb@" in a_err  # it noticed, and stopped writing
    ((status, attempts, worker, error),) = _q(url, "SELECT status, attempts, worker_id, error FROM eval_run WHERE id = :r", r=run_id)
    assert (status, attempts, error) == ("completed", 2, None) and worker.startswith("wb@")
    assert _q(url, "SELECT COUNT(*), COUNT(DISTINCT doc_id) FROM sample_result WHERE run_id = :r", r=run_id)[0] == (5, 5)


def test_timeouts_attempts_and_sqlite_single_worker(sqlite_url: str) -> None:
    """In one process on SQLite: the heartbeat timeout returns a foreign host's silent run to the
    queue, repeated deaths fail it, and the worker says once why several need PostgreSQL."""
    from evaluator import queue, store
    from evaluator.data import DataSource
    from evaluator.runner import RunOptions, plan_run

    engine = dbmod.make_engine(sqlite_url)
    opts = RunOptions(backend="hf", samples=2, chunk_docs=1)
    ids = []
    for dataset in ("gsm8k", "medqa", "mmlu"):
        with engine.connect() as conn:
            plan = plan_run(conn, MODEL, dataset, opts, DataSource(data_dir=DATA / dataset))
        ids.append(queue.enqueue(engine, plan, opts)[0])
    now = store.now()
    fresh, silent, doomed = ids
    for run_id, hb, attempts in ((fresh, now, 1), (silent, now - dt.timedelta(seconds=30), 1),
                                 (doomed, now - dt.timedelta(seconds=30), 3)):  # fmt: skip
        store.update_run(engine, run_id, {"status": "running", "worker_id": f"w@elsewhere:{run_id}",
                                          "heartbeat_at": hb, "attempts": attempts})  # fmt: skip
    moved = queue.requeue_dead(engine, timeout=10, max_attempts=3)
    assert sorted((m["run"], m["to"]) for m in moved) == [(silent, "queued"), (doomed, "failed")]
    assert store.run_row(engine, fresh)["status"] == "running"  # type: ignore[index]
    assert "died 3 times" in store.run_row(engine, doomed)["error"]  # type: ignore[index]

    store.update_run(engine, fresh, {"heartbeat_at": now - dt.timedelta(seconds=30)})
    assert queue.claim(engine, "picky@x:1", models=["other_model"]) is None  # --models: only those runs
    assert queue.claim(engine, "picky@x:1", exclude_models=[MODEL]) is None
    lines: list[str] = []
    done = queue.work(engine, "solo", idle_exit=True, poll_s=0.1, heartbeat_interval=0.2, heartbeat_timeout=10,
                      backend_factory=lambda plan: FakeBackend(0.0), echo=lines.append)  # fmt: skip
    assert sorted(d["run"] for d in done) == sorted([fresh, silent]) and {d["status"] for d in done} == {"completed"}
    assert sum("SQLite" in line for line in lines) == 1 and "FOR UPDATE SKIP LOCKED" in lines[0]
    assert store.run_row(engine, silent)["attempts"] == 2  # type: ignore[index]
