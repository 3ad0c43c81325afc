"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 (tests/openai_server.py)
that serves the tiny model: the same completions as the hf backend, through injected 500s, a 429
with Retry-After, a response slower than the timeout and a dropped connection; the API key is
sent but never stored or logged."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

pytest.importorskip("transformers")

from catalog import db as dbmod  # noqa: E402
from catalog.db import CatalogError  # noqa: E402
from catalog.schema import metadata  # noqa: E402
from evaluator import runner  # noqa: E402
from evaluator.backends.base import ChatPrompt, GenerationParams  # noqa: E402
from evaluator.backends.openai import OpenAIBackend, OpenAIError, parse_retry_after, public_url  # noqa: E402
from evaluator.data import DataSource  # noqa: E402

from .conftest import console_script, run_cli  # noqa: E402
from .openai_server import serve  # noqa: E402
from .tiny_model import DATA  # noqa: E402

SERVED = "local/tiny-llama"  # the catalog row's hub id: the name the server serves the model under


def _plan(url: str, dataset: str, **opts: Any) -> runner.RunPlan:
    with dbmod.make_engine(url).connect() as conn:
        return runner.plan_run(conn, "tiny_llama", dataset, runner.RunOptions(**opts), DataSource(data_dir=DATA / dataset))


def _samples(url: str, run_id: int) -> dict[str, tuple[Any, ...]]:
    with dbmod.make_engine(url).connect() as conn:
        rows = conn.execute(text("SELECT doc_id, completion, score, tokens, prompt_tokens, finish_reason "
                                 "FROM sample_result WHERE run_id = :r"), {"r": run_id}).fetchall()  # fmt: skip
    return {r.doc_id: tuple(r[1:]) for r in rows}


def _database_text(url: str) -> str:
    """Every row of every table, as text (to look for a leaked key)."""
    engine = dbmod.make_engine(url)
    parts = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            parts.extend(repr(tuple(r)) for r in conn.execute(select(table)))
    engine.dispose()
    return "\n".join(parts)


def test_openai_backend_matches_hf_through_faults(eval_url: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    key = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("TEST_OPENAI_KEY", key)
    caplog.set_level(logging.INFO, logger="evaluator")
    engine = dbmod.make_engine(eval_url)
    faults = ["500", "429", "slow", "drop", "500"]
    common = {"samples": 5, "max_tokens": 8, "fresh": True}
    with serve(tiny_model_dir, SERVED, faults, api_key=key, retry_after=1.0, slow_s=2.5, delay_s=0.05) as srv:
        runs = {}
        for dataset in ("gsm8k", "medqa"):  # gsm8k: /v1/completions; medqa: chat, /v1/chat/completions
            plan = _plan(eval_url, dataset, backend="openai", base_url=srv.url, api_key_env="TEST_OPENAI_KEY",
                         max_concurrent=4, request_timeout=1.5, **common)  # fmt: skip
            runs[dataset] = runner.execute(engine, plan, runner.default_backend_factory, progress=None)
        state = srv.state
    # The server saw every fault once, and answered every document once it was retried.
    assert [state.counters[f] for f in ("500", "429", "slow", "drop")] == [2, 1, 1, 1]
    assert state.counters["ok"] == 10 and state.counters["completions"] == 5 and state.counters["chat"] == 5
    assert state.counters["requests"] >= 15 and state.counters["unauthorized"] == 0
    assert 2 <= state.max_in_flight <= 4  # concurrent, and bounded by --max-concurrent
    for body, (fault, answered) in state.faulted.items():
        times = state.arrivals[body]
        assert len(times) >= 2, f"the request that got {fault} was not retried"
        if fault == "429":
            retry = min(t for t in times if t > answered)
            assert retry - answered >= 0.95, "Retry-After was not honoured"

    # The same completions, token counts and scores as the hf backend on the same prompts.
    for dataset, result in runs.items():
        ref_plan = _plan(eval_url, dataset, backend="hf", model_path=str(tiny_model_dir), batch_size=1, **common)
        ref = runner.execute(engine, ref_plan, runner.default_backend_factory, progress=None)
        got, want = _samples(eval_url, result.run_id), _samples(eval_url, ref.run_id)
        assert len(got) == 5 and got == want, dataset
        assert {k: m.value for k, m in result.metrics.items()} == {k: m.value for k, m in ref.metrics.items()}
        with engine.connect() as conn:
            row = conn.execute(text("SELECT status, backend FROM eval_run WHERE id = :r"), {"r": result.run_id}).one()
        assert (row.status, row.backend) == ("completed", "openai")
    args = runner.store.run_row(engine, runs["gsm8k"].run_id)["engine_args"]  # type: ignore[index]
    assert args["retries"] >= 5 and args["api_key_env"] == "TEST_OPENAI_KEY" and args["api_key_set"] is True
    assert args["base_url"] == srv.url and args["completions"] == 5
    assert runner.store.run_row(engine, runs["medqa"].run_id)["engine_args"]["chat_completions"] == 5  # type: ignore[index]
    with engine.connect() as conn:  # chat prompts are recorded as the messages sent
        prompt = conn.execute(text("SELECT prompt FROM sample_result WHERE run_id = :r"), {"r": runs["medqa"].run_id}).scalars().first()
    assert prompt.startswith('[{"role": ')

    # The key was sent (the server checks it) but is nowhere in the database, the logs or the output.
    assert key not in _database_text(eval_url)
    if eval_url.startswith("sqlite"):
        db_file = Path(eval_url.removeprefix("sqlite:///"))
        for f in (db_file, db_file.with_name(db_file.name + "-wal")):
            assert not f.exists() or key.encode() not in f.read_bytes()
    captured = capfd.readouterr()
    assert key not in captured.out + captured.err
    assert key not in "\n".join(r.getMessage() for r in caplog.records)
    assert any("retry" in r.getMessage() for r in caplog.records)  # the retries were logged (without the key)


def test_refusals_and_giving_up(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("RIGHT_KEY", key)
    monkeypatch.setenv("WRONG_KEY", "sk-wrong-" + key[-8:])
    monkeypatch.delenv("UNSET_KEY", raising=False)
    with serve(tiny_model_dir, SERVED, ["500", "500", "500"], api_key=key) as srv:
        with pytest.raises(OpenAIError, match="HTTP 401: Incorrect API key") as err:
            OpenAIBackend(SERVED, base_url=srv.url, api_key_env="WRONG_KEY")
        assert "sk-wrong" not in str(err.value) and srv.state.counters["unauthorized"] == 1
        with pytest.raises(CatalogError, match="--api-key-env UNSET_KEY: that environment variable is not set"):
            OpenAIBackend(SERVED, base_url=srv.url, api_key_env="UNSET_KEY")
        with pytest.raises(CatalogError, match="does not serve 'other/model'; it serves: local/tiny-llama"):
            OpenAIBackend("other/model", base_url=srv.url, api_key_env="RIGHT_KEY")
        backend = OpenAIBackend(SERVED, base_url=srv.url, api_key_env="RIGHT_KEY", max_retries=2, backoff_s=0.01)
        params = GenerationParams(max_tokens=4)
        with pytest.raises(OpenAIError, match=r"gave up after 3 attempts; last: HTTP 500: injected internal error"):
            backend.generate(["Question: 1+1?"], params)
        # ... and then works: a plain prompt and a chat prompt, n=1, with usage and finish_reason.
        (plain,), (chat,) = backend.generate(["Question: 1+1?", ChatPrompt([{"role": "user", "content": "hi"}])], params)
        backend.close()
    assert plain.tokens > 0 and plain.prompt_tokens > 0 and plain.finish_reason in ("stop", "length")
    assert chat.tokens > 0 and chat.prompt_tokens > 0 and srv.state.counters["chat"] == 1
    # Nothing listens any more: connection refused is retried, then reported.
    with pytest.raises(OpenAIError, match="gave up after 2 attempts; last: ConnectionRefusedError"):
        OpenAIBackend(SERVED, base_url=srv.url, max_retries=1, backoff_s=0.01)


def test_url_and_retry_after_parsing() -> None:
    assert public_url("https://user:secret@api.example.com/v1/?key=abc")[1] == "https://api.example.com/v1"
    assert public_url("http://127.0.0.1:8000")[1] == "http://127.0.0.1:8000/v1"
    with pytest.raises(CatalogError, match="--base-url must be an http"):
        public_url("127.0.0.1:8000")
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= (parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") or 0) < 1  # a date in the past: now


def test_cli_refuses_openai_without_base_url(tmp_path: Path) -> None:
    proc = run_cli(console_script("evaluator"), "run", "--model", "qwen3_14b", "--backend", "openai",
                   "--db", f"sqlite:///{tmp_path / 'none.db'}")  # fmt: skip
    assert proc.returncode == 2 and "--backend openai needs --base-url" in proc.stderr
