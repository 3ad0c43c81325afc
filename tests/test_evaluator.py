"""The evaluator end to end: a real tiny transformers model, real `datasets` loaders on local
files in the upstream schema, and the rows written to a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

pytest.importorskip("transformers")
pytest.importorskip("datasets")

from catalog import db as dbmod  # noqa: E402
from catalog.db import CatalogError  # noqa: E402
from evaluator import runner  # noqa: E402
from evaluator.data import DataSource  # noqa: E402
from evaluator.external import check_score_request, score_file  # noqa: E402
from evaluator.tasks import get_task, load_all  # noqa: E402

from .conftest import console_script, run_cli  # noqa: E402
from .tiny_model import DATA, CountingBackend, gold_completion, overfit  # noqa: E402

TEXT_TASKS = sorted(n for n, cls in load_all().items() if not cls.needs_execution)


def _plan(url: str, dataset: str, model_dir: Path, **opts: Any) -> runner.RunPlan:
    source = DataSource(data_dir=DATA / dataset)
    with dbmod.make_engine(url).connect() as conn:
        return runner.plan_run(conn, "tiny_llama", dataset,
                               runner.RunOptions(model_path=str(model_dir), **opts), source)  # fmt: skip


def _one(url: str, sql: str, **params: Any) -> Any:
    with dbmod.make_engine(url).connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


@pytest.mark.parametrize("dataset", TEXT_TASKS)
def test_every_benchmark_end_to_end(eval_url: str, tiny_model_dir: Path, dataset: str) -> None:
    plan = _plan(eval_url, dataset, tiny_model_dir, samples=3, max_tokens=12, fresh=True)
    backend = CountingBackend(tiny_model_dir)
    result = runner.execute(dbmod.make_engine(eval_url), plan, lambda p: backend, progress=None)
    n_docs = 3  # every local test file holds at least three documents
    assert _one(eval_url, "SELECT status FROM eval_run WHERE id = :r", r=result.run_id) == "completed"
    samples = _one(eval_url, "SELECT COUNT(*) FROM sample_result WHERE run_id = :r", r=result.run_id)
    assert samples == n_docs == sum(backend.calls)
    task = get_task(dataset)
    with dbmod.make_engine(eval_url).connect() as conn:
        metrics = {r.name: r for r in conn.execute(text("SELECT * FROM metric WHERE run_id = :r"), {"r": result.run_id})}
        board = conn.execute(text("SELECT metric, value, n FROM leaderboard WHERE model_id = 'tiny_llama' "
                                  "AND dataset_id = :d"), {"d": dataset}).fetchall()  # fmt: skip
        rows = conn.execute(text("SELECT prompt, completion, reference, score, tokens, finish_reason "
                                 "FROM sample_result WHERE run_id = :r"), {"r": result.run_id}).fetchall()  # fmt: skip
    assert set(metrics) == set(task.metrics)
    assert all(m.n == n_docs and 0.0 <= m.value <= 1.0 for m in metrics.values())
    assert {(b.metric, b.n) for b in board} == {(m, n_docs) for m in task.metrics}
    for r in rows:
        assert r.prompt and r.reference is not None and r.score in (0.0, 1.0)
        assert 0 < r.tokens <= 12 and r.finish_reason in ("stop", "length")


def test_overfit_model_scores_one(eval_url: str, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A copy trained on the gold answers must score 1.0: catches prompt, template, stop and
    extraction bugs that a random model hides. gsm8k exercises few-shot text prompts and stop
    sequences; medqa the chat template."""
    out = tmp_path_factory.getbasetemp() / "overfit"
    backend = CountingBackend(tiny_model_dir)
    plans = {d: _plan(eval_url, d, tiny_model_dir, samples=2, fresh=True) for d in ("gsm8k", "medqa")}
    if not (out / "config.json").exists():
        pairs = []
        for dataset, plan in plans.items():
            from evaluator.data import load_docs

            for doc in load_docs(plan.task, plan.source, 2):
                prompt = runner.render(backend, plan.task.prompt(doc), None, plan.task)
                pairs.append((prompt, gold_completion(dataset, doc.data)))
        overfit(tiny_model_dir, out, pairs, steps=400)
    trained = CountingBackend(out)
    for dataset, plan in plans.items():
        result = runner.execute(dbmod.make_engine(eval_url), plan, lambda p: trained, progress=None)
        assert {k: v.value for k, v in result.metrics.items()} == {m: 1.0 for m in plan.task.metrics}, dataset


def test_interrupted_run_resumes_without_repeating_work(eval_url: str, tiny_model_dir: Path) -> None:
    plan = _plan(eval_url, "gsm8k", tiny_model_dir, samples=5, max_tokens=8, fresh=True)
    plan.chunk_docs = 2
    engine = dbmod.make_engine(eval_url)
    flaky = CountingBackend(tiny_model_dir, fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(engine, plan, lambda p: flaky, progress=None)
    run_id = _one(eval_url, "SELECT MAX(id) FROM eval_run WHERE dataset_id = 'gsm8k'")
    assert _one(eval_url, "SELECT status FROM eval_run WHERE id = :r", r=run_id) == "interrupted"
    assert _one(eval_url, "SELECT COUNT(*) FROM sample_result WHERE run_id = :r", r=run_id) == 2

    plan.fresh = False
    again = CountingBackend(tiny_model_dir)
    result = runner.execute(engine, plan, lambda p: again, progress=None)
    assert result.run_id == run_id and result.resumed_from == 2 and sum(again.calls) == 3
    assert _one(eval_url, "SELECT status FROM eval_run WHERE id = :r", r=run_id) == "completed"
    assert _one(eval_url, "SELECT COUNT(DISTINCT doc_id) FROM sample_result WHERE run_id = :r", r=run_id) == 5
    assert result.metrics["exact_match,strict-match"].n == 5


@pytest.mark.parametrize(
    "model,dataset,opts,source,message",
    [
        ("bio_clinicalbert", "pubmedqa", {}, None, "encoder-only model cannot generate"),
        ("tiny_llama", "nope", {}, None, "unknown dataset 'nope'; valid: arc_challenge"),
        ("nope", "gsm8k", {}, None, "unknown model 'nope'; valid:"),
        ("tiny_llama", "bioasq", {}, DataSource(), "needs registration); pass --data-file"),
        ("tiny_llama", "gsm8k", {"num_samples": 3}, None, "needs --temperature above 0"),
        ("tiny_llama", "gsm8k", {}, DataSource(data_file=Path("/nonexistent.jsonl")), "does not exist"),
    ],
)
def test_refusals_come_before_anything_heavy(seeded_tiny_sqlite: str, model: str, dataset: str,
                                             opts: dict[str, Any], source: Any, message: str) -> None:  # fmt: skip
    with dbmod.make_engine(seeded_tiny_sqlite).connect() as conn, pytest.raises(CatalogError) as err:
        runner.plan_run(conn, model, dataset, runner.RunOptions(**opts), source or DataSource(data_dir=DATA / dataset))
    assert message in str(err.value)


def test_offline_hub_is_refused(seeded_tiny_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with dbmod.make_engine(seeded_tiny_sqlite).connect() as conn, pytest.raises(CatalogError, match="offline"):
        runner.plan_run(conn, "tiny_llama", "gsm8k", runner.RunOptions(), DataSource())


def test_score_external_completions(eval_url: str, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines()]
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps({"doc_id": i, "completion": r["answer"]}) + "\n" for i, r in enumerate(rows)))
    source = DataSource(data_dir=DATA / "gsm8k")
    with dbmod.make_engine(eval_url).connect() as conn:
        task = check_score_request(conn, "gsm8k", "tiny_llama", source)
    run_id, metrics = score_file(dbmod.make_engine(eval_url), task, path, source, "tiny_llama")
    assert {k: (m.value, m.n) for k, m in metrics.items()} == {m: (1.0, len(rows)) for m in task.metrics}
    assert _one(eval_url, "SELECT backend FROM eval_run WHERE id = :r", r=run_id) == "external"

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"doc_id": 999, "completion": "x"}\n')
    with pytest.raises(CatalogError, match="not in gsm8k, e.g. '999'"):
        score_file(dbmod.make_engine(eval_url), task, bad, source)


def test_cli_dry_run_run_and_reports(seeded_tiny_sqlite: str, tiny_model_dir: Path) -> None:
    ev = console_script("evaluator")
    common = ["--db", seeded_tiny_sqlite]
    before = _one(seeded_tiny_sqlite, "SELECT COUNT(*) FROM eval_run")
    dry = run_cli(ev, "run", "--category", "biomedical_specialists", "--dry-run", *common)
    assert dry.returncode == 0, dry.stderr
    assert "tiny_llama" in dry.stdout and "would skip bio_clinicalbert" in dry.stdout
    assert _one(seeded_tiny_sqlite, "SELECT COUNT(*) FROM eval_run") == before

    proc = run_cli(ev, "run", "--model", "tiny_llama", "--dataset", "gsm8k", "--samples", "2", "--max-tokens", "8",
                   "--model-path", str(tiny_model_dir), "--data-dir", str(DATA), *common, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "exact_match,strict-match" in proc.stdout and "tiny_llama gsm8k" in proc.stderr  # the progress bar
    runs = run_cli(ev, "runs", "-f", "json", *common)
    newest = json.loads(runs.stdout)[0]
    assert newest["status"] == "completed" and newest["done"] == 2
    shown = run_cli(ev, "show", str(newest["id"]), *common)
    assert shown.returncode == 0 and "metrics:" in shown.stdout
    board = run_cli(ev, "leaderboard", "--dataset", "gsm8k", "-f", "json", *common)
    assert any(r["model_id"] == "tiny_llama" for r in json.loads(board.stdout))
    bad = run_cli(ev, "run", "--model", "tiny_llama", "--dataset", "gsm9k", *common)
    assert bad.returncode == 2 and "unknown dataset 'gsm9k'" in bad.stderr


def test_planning_and_refusing_never_import_torch(seeded_tiny_sqlite: str) -> None:
    code = f"""
import sys
from evaluator.cli import app
for args in (["run", "--category", "coding_specialists", "--dry-run"], ["run", "--model", "bio_clinicalbert"],
             ["runs"], ["leaderboard"], ["list-categories"]):
    try:
        app([*args, "--db", {seeded_tiny_sqlite!r}])
    except SystemExit:
        pass
print("HEAVY:" + ",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "vllm"))))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY:", proc.stderr


def test_plan_takes_settings_from_the_catalog(seeded_tiny_sqlite: str, tiny_model_dir: Path) -> None:
    medqa = _plan(seeded_tiny_sqlite, "medqa", tiny_model_dir)
    gsm8k = _plan(seeded_tiny_sqlite, "gsm8k", tiny_model_dir, samples=7)
    # medqa is a biomedical dataset: that category's settings, not the model's primary category's.
    assert medqa.category["id"] == "biomedical_specialists" and medqa.params.stop == ("\n\n",)
    assert medqa.params.max_tokens == 64 and medqa.limit == 200 and medqa.preset["id"] == "balanced"
    # gsm8k uses its own lm-eval stop sequences and the math category's limits.
    assert gsm8k.params.stop == ("Question:", "</s>", "<|im_end|>") and gsm8k.limit == 7
    assert gsm8k.params.greedy and gsm8k.batch_size == 4


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _cuda_available(), reason="no CUDA GPU on this machine (checked on a lent GPU machine)")
def test_cli_run_uses_the_gpu_when_there_is_one(seeded_tiny_sqlite: str, tiny_model_dir: Path) -> None:
    """On a GPU the hf backend is chosen to run there in bf16, and the run records that and its
    peak GPU memory; the samples and metrics are written as on a CPU."""
    ev = console_script("evaluator")
    proc = run_cli(ev, "run", "--model", "tiny_llama", "--dataset", "gsm8k", "--samples", "3", "--max-tokens", "16",
                   "--model-path", str(tiny_model_dir), "--data-dir", str(DATA), "--fresh",
                   "--db", seeded_tiny_sqlite, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with dbmod.make_engine(seeded_tiny_sqlite).connect() as conn:
        run = conn.execute(text("SELECT id, status, engine_args, peak_memory_gb, tokens_per_s FROM eval_run "
                                "ORDER BY id DESC LIMIT 1")).one()  # fmt: skip
        n = conn.execute(text("SELECT COUNT(*) FROM sample_result WHERE run_id = :r"), {"r": run.id}).scalar_one()
    args = json.loads(run.engine_args) if isinstance(run.engine_args, str) else run.engine_args
    assert run.status == "completed" and n == 3
    assert args["device"].startswith("cuda") and args["dtype"] == "bfloat16"
    assert run.peak_memory_gb is not None and 0 < run.peak_memory_gb < 80 and run.tokens_per_s > 0


@pytest.mark.parametrize("prefill_alone", [True, False], ids=["prefill-alone", "batched-prefill"])
def test_padded_batches_generate_what_single_prompts_do(tiny_model_dir: Path, prefill_alone: bool) -> None:
    """Left padding, each prompt's prefill run alone (the CPU default) or padded in the batch, and
    the additive-mask SDPA change nothing: prompts of very different lengths give the same greedy
    tokens in one batch as alone."""
    from evaluator.backends.base import GenerationParams
    from evaluator.backends.hf import ADDITIVE_MASK_SDPA, HFBackend
    from evaluator.data import load_docs

    task = get_task("gsm8k")
    prompts = [task.prompt(d).text for d in load_docs(task, DataSource(data_dir=DATA / "gsm8k"), 3)]
    prompts.append("Question: 1+1?\nAnswer:")
    params = GenerationParams(max_tokens=24, temperature=0.0, stop=("Question:",))
    batched = HFBackend(str(tiny_model_dir), batch_size=len(prompts), prefill_alone=prefill_alone)
    if batched.device == "cpu":
        args = batched.engine_args()
        assert args["attn_implementation"] == ADDITIVE_MASK_SDPA and args["prefill_alone"] is prefill_alone
    single = HFBackend(str(tiny_model_dir), batch_size=1)
    got, want = batched.generate(prompts, params), single.generate(prompts, params)
    assert len({len(batched.tokenizer(p)["input_ids"]) for p in prompts}) == len(prompts)  # all padded differently
    assert batched.engine_args()["prefill_alone"] is (prefill_alone and batched.device == "cpu")  # still on: it worked
    assert [(c[0].text, c[0].tokens, c[0].prompt_tokens, c[0].finish_reason) for c in got] == [
        (c[0].text, c[0].tokens, c[0].prompt_tokens, c[0].finish_reason) for c in want
    ]


def test_the_reserved_kv_cache_writes_in_place_and_hands_reshapes_to_transformers() -> None:
    """The CPU batch cache: prompts placed left-padded, each step written into the reserved buffer
    (no new tensor), and transformers' own concatenation once the batch is reshaped or the
    reservation would overflow; the keys and values are what concatenation gives in every case."""
    import torch

    from evaluator.backends.hf import _reserved_layer_class

    layer = _reserved_layer_class()(5)
    a, b = torch.randn(1, 1, 3, 2), torch.randn(1, 1, 2, 2)  # two prompts' caches: 3 and 2 positions
    layer.place(0, 2, 0, a, -a)
    layer.place(1, 2, 1, b, -b)
    layer.settle(3)
    want = torch.cat([a, torch.cat([torch.zeros(1, 1, 1, 2), b], dim=-2)])
    assert torch.equal(layer.keys, want) and torch.equal(layer.values, -want)
    assert layer.get_seq_length() == 3

    step = torch.randn(2, 1, 1, 2)
    keys, values = layer.update(step, -step)
    want = torch.cat([want, step], dim=-2)
    assert torch.equal(keys, want) and torch.equal(values, -want)
    assert keys.data_ptr() == layer.buffers[0].data_ptr() and values.data_ptr() == layer.buffers[1].data_ptr()

    layer.batch_select_indices(torch.tensor([1]))  # e.g. a finished row dropped by transformers
    step = torch.randn(1, 1, 1, 2)
    keys, values = layer.update(step, -step)
    want = torch.cat([want[1:], step], dim=-2)
    assert layer.buffers is None and torch.equal(keys, want) and torch.equal(values, -want)

    full = _reserved_layer_class()(4)
    full.place(0, 1, 0, a, -a)
    full.settle(3)
    more = torch.randn(1, 1, 2, 2)  # 3 + 2 positions > the 4 reserved
    keys, _ = full.update(more, -more)
    assert full.buffers is None and torch.equal(keys, torch.cat([a, more], dim=-2))
