"""Crash safety with real `evaluator run` processes: SIGKILL mid-generation then a rerun gives
every document exactly once and the metrics of an uninterrupted run; SIGINT (Ctrl-C) marks the
run interrupted with what it finished; a run another live process is working on is not resumed.

The runs use the tiny model through the real console script; the test hook
EVALUATOR_BACKEND_FACTORY=tests.test_resume:slow_hf_backend slows each generate call down so
that the test can kill the process between two chunks.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from catalog import db as dbmod

from .conftest import ROOT, console_script, new_database

DATA = Path(__file__).resolve().parent / "data"


def slow_hf_backend(plan: Any) -> Any:
    """TEST HOOK target: the plan's real backend, with a pause before every generate call."""
    from evaluator.backends import create_backend

    backend = create_backend(plan)
    inner = backend.generate
    delay = float(os.environ.get("SLOW_BACKEND_DELAY_S", "0.8"))

    def generate(prompts: Any, params: Any) -> Any:
        time.sleep(delay)
        return inner(prompts, params)

    backend.generate = generate  # type: ignore[method-assign]
    return backend


def _seeded(request: pytest.FixtureRequest, backend: str, tmp: Path) -> Iterator[str]:
    from .tiny_model import seed_catalog

    for url in new_database(request, backend, tmp):
        yield seed_catalog(url, tmp)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """PostgreSQL, where clusters keep their runs (SQLite: the Ctrl-C test and test_evaluator's resume test)."""
    yield from _seeded(request, "postgresql", tmp_path)


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _seeded(request, "sqlite", tmp_path)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Path:
    return tiny_model_dir


def _args(tiny: Path, url: str) -> list[str]:
    return ["run", "--model", "tiny_llama", "--dataset", "gsm8k", "--samples", "5", "--max-tokens", "8",
            "--model-path", str(tiny), "--data-dir", str(DATA), "--chunk-docs", "1", "--db", url]  # fmt: skip


def _env(slow: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CATALOG_DB_URL"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if slow:
        env["EVALUATOR_BACKEND_FACTORY"] = "tests.test_resume:slow_hf_backend"
    return env


def _q(url: str, sql: str, **params: Any) -> list[Any]:
    engine = dbmod.make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).fetchall()
    engine.dispose()
    return rows


def _wait_for(cond: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before the test could stop it: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no chunk reached the database in time")
        time.sleep(0.1)


def _samples_of(url: str, run_id: int) -> dict[str, tuple[Any, ...]]:
    rows = _q(url, "SELECT id, doc_id, completion, score FROM sample_result WHERE run_id = :r", r=run_id)
    return {r.doc_id: (r.id, r.completion, r.score) for r in rows}


def _metrics(url: str, run_id: int) -> dict[str, tuple[float, int]]:
    return {r.name: (r.value, r.n) for r in _q(url, "SELECT name, value, n FROM metric WHERE run_id = :r", r=run_id)}


def test_sigkill_mid_run_then_rerun_loses_and_repeats_nothing(pg_url: str, tiny: Path) -> None:
    url = pg_url
    ev = console_script("evaluator")
    done = lambda: _q(url, "SELECT COUNT(*) FROM sample_result")[0][0] >= 1  # noqa: E731
    proc = subprocess.Popen([ev, *_args(tiny, url)], env=_env(slow=True), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for(done, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    ((run_id, status, worker),) = _q(url, "SELECT id, status, worker_id FROM eval_run")
    before = _samples_of(url, run_id)
    assert status == "running" and worker == f"run@{socket.gethostname()}:{proc.pid}"  # no process left to say otherwise
    assert 1 <= len(before) < 5

    rerun = subprocess.run([ev, *_args(tiny, url)], env=_env(slow=False), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"run {run_id}: continued after {len(before)} finished samples" in rerun.stderr
    assert _q(url, "SELECT id, status, attempts FROM eval_run") == [(run_id, "completed", 2)]
    after = _samples_of(url, run_id)
    assert _q(url, "SELECT COUNT(*), COUNT(DISTINCT doc_id) FROM sample_result")[0] == (5, 5)
    assert {k: after[k] for k in before} == before  # what was written before the kill is kept, not redone

    # An uninterrupted run of the same configuration gives the same samples and metrics.
    from evaluator import runner
    from evaluator.data import DataSource

    engine = dbmod.make_engine(url)
    with engine.connect() as conn:
        plan = runner.plan_run(conn, "tiny_llama", "gsm8k", runner.RunOptions(
            backend="hf", samples=5, max_tokens=8, model_path=str(tiny), fresh=True, chunk_docs=1),
            DataSource(data_dir=DATA / "gsm8k"))  # fmt: skip
    ref = runner.execute(engine, plan, runner.default_backend_factory, progress=None)
    assert ref.run_id != run_id
    strip = lambda s: {k: v[1:] for k, v in s.items()}  # noqa: E731  (without the row ids)
    assert strip(_samples_of(url, ref.run_id)) == strip(after)
    assert _metrics(url, ref.run_id) == _metrics(url, run_id) and len(_metrics(url, run_id)) == 2


def test_ctrl_c_marks_the_run_interrupted_with_what_it_finished(sqlite_url: str, tiny: Path) -> None:
    url = sqlite_url
    proc = subprocess.Popen([console_script("evaluator"), *_args(tiny, url)], env=_env(slow=True),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for(lambda: _q(url, "SELECT COUNT(*) FROM sample_result")[0][0] >= 1, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    ((run_id, status, error, finished),) = _q(url, "SELECT id, status, error, finished_at FROM eval_run")
    assert status == "interrupted" and "Ctrl-C" in error and finished is not None
    n = _q(url, "SELECT COUNT(*) FROM sample_result WHERE run_id = :r", r=run_id)[0][0]
    assert 1 <= n < 5


def test_a_run_in_progress_in_a_live_process_is_not_resumed(sqlite_url: str) -> None:
    from evaluator import queue, store

    engine = dbmod.make_engine(sqlite_url)
    host = socket.gethostname()
    dead = subprocess.Popen(["true"])
    dead.wait()
    now = store.now()
    old = now - dt.timedelta(seconds=600)

    def run(worker: str, heartbeat: dt.datetime, status: str = "running") -> int:
        return store.create_run(engine, {"model_id": "tiny_llama", "dataset_id": "gsm8k", "backend": "hf",
                                         "status": status, "n_samples": 5, "config_fingerprint": "fp",
                                         "worker_id": worker, "heartbeat_at": heartbeat})  # fmt: skip

    def resume(me: str) -> Any:
        return queue.resume(engine, "tiny_llama", "gsm8k", "fp", me, timeout=60)

    run(f"run@{host}:{os.getpid()}", now)  # this very process: alive
    run("run@elsewhere:1", now)  # another host, fresh heartbeat: alive
    assert resume(f"run@{host}:999999") is None
    stale = run("run@elsewhere:2", old)  # another host, heartbeat older than the timeout: dead
    assert resume("a@x:1") == stale
    killed = run(f"run@{host}:{dead.pid}", now)  # this host, process gone: dead without waiting
    assert resume("b@x:1") == killed
    assert resume("c@x:1") is None  # both taken over already; of two resumers only one wins
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, worker_id FROM eval_run WHERE id IN (:a, :b)"), {"a": stale, "b": killed}).fetchall())
    assert rows == {stale: "a@x:1", killed: "b@x:1"}
    assert not store.take_over(engine, killed, "running", f"run@{host}:{dead.pid}", "d@x:1")  # compare-and-set
