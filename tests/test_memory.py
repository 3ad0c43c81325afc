"""The memory planner: real file sizes, the KV formula, tensor parallelism, the model_memory
view on both databases, and `catalog fit` / `catalog show` through the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from catalog import db as dbmod
from catalog import memory

from .conftest import run_cli

# (catalog key, quantization, real safetensors GB, where the size was read). docs/memory.md
# shows the same table; the planner must land within 5% of each.
REAL_SIZES = [
    ("llama31_8b", "none", 16.07, "https://huggingface.co/mylesgoose/Llama-3.1-8B-Instruct/tree/main"),
    ("qwen3_8b", "none", 16.4, "https://huggingface.co/Qwen/Qwen3-8B/tree/main"),
    ("phi35_mini", "none", 7.64, "https://huggingface.co/microsoft/Phi-3.5-mini-instruct/tree/64963004ad95869fa73a30279371c8778509ac84"),
    ("gemma2_9b", "none", 18.48, "https://huggingface.co/jebish7/gemma-2-9b-it/tree/main"),
    ("mistral_nemo_12b", "none", 24.51, "https://huggingface.co/unsloth/Mistral-Nemo-Instruct-2407/tree/5006905d489bc1cf66f4e4f78afeb210242dddf8"),
    ("olmo2_13b", "none", 27.42, "https://huggingface.co/allenai/OLMo-2-1124-13B-Instruct/tree/a8891dc24795eeda87dab5de105e6a07e23f7283"),
    ("yi_9b", "none", 17.66, "https://huggingface.co/01-ai/Yi-9B/tree/main"),
    ("llama32_3b", "none", 6.43, "https://huggingface.co/fanherodev/Llama-3.2-3B-Instruct/tree/main"),
    ("codestral_22b", "none", 44.5, "https://huggingface.co/mistral-community/Codestral-22B-v0.1/tree/main"),
    ("qwen2_vl_7b", "none", 16.57, "https://huggingface.co/Qwen/Qwen2-VL-7B-Instruct/tree/a7a06a1cc11b4514ce9edcde0e3ca1d16e5ff2fc"),
    ("biomistral_7b", "awq", 4.15, "https://huggingface.co/BioMistral/BioMistral-7B-AWQ-QGS128-W4-GEMM/tree/aaed89c6a1c0c8fb23cf3f9b0b14fd6a97a6da56"),
    ("llama31_8b", "awq", 5.73, "https://huggingface.co/hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4/tree/main"),
    ("qwen25_7b", "awq", 5.57, "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct-AWQ/tree/main"),
    ("mistral_7b", "awq", 4.16, "https://huggingface.co/yeirr/mistral-7b-v03-instruct-awq-g128-4bit/tree/main"),
]


def _models(builtin) -> dict:  # type: ignore[no-untyped-def]
    return {m.id: m for m in builtin.of("models")}


@pytest.mark.parametrize("model_id,quantization,real_gb,url", REAL_SIZES, ids=[f"{m}-{q}" for m, q, *_ in REAL_SIZES])
def test_weights_within_5_percent_of_real_files(builtin, model_id: str, quantization: str, real_gb: float, url: str) -> None:  # type: ignore[no-untyped-def]
    m = _models(builtin)[model_id]
    est = memory.weights_gb(m.params_b, quantization, vocab_size=m.vocab_size, hidden_size=m.hidden_size)
    assert abs(est - real_gb) / real_gb < 0.05, (model_id, quantization, est, real_gb, url)


def test_real_sizes_cover_ten_models_and_both_formats() -> None:
    assert len({m for m, *_ in REAL_SIZES}) >= 10
    assert {q for _, q, *_ in REAL_SIZES} == {"none", "awq"}


def test_int4_overhead_is_group_size_128_scales_and_zeros() -> None:
    assert memory.int4_bytes_per_param() == pytest.approx(0.5 + 2 / 128 + 0.5 / 128)
    # AWQ keeps the embedding and lm_head in 16-bit: Llama-3.1-8B has 1.05B such params.
    assert memory.embedding_params_b(128256, 4096) == pytest.approx(1.0507, abs=1e-4)


def test_kv_formula_matches_vllm() -> None:
    # vLLM: 2 (K, V) x layers x kv_heads x head_dim x dtype bytes, per token.
    assert memory.kv_bytes_per_token(32, 8, 128) == 2 * 32 * 8 * 128 * 2 == 131072  # Llama-3.1-8B
    assert memory.kv_bytes_per_token(80, 8, 128) == 327680  # Llama-2-70B
    assert memory.kv_cache_gb(131072, 32768, 4) == pytest.approx(131072 * 32768 * 4 / 1e9)
    # MLA caches the 512 + 64 latent per layer, not K and V per head.
    assert memory.kv_bytes_per_token(27, 16, 128, architecture="DeepseekV2ForCausalLM") == 27 * 576 * 2
    assert memory.kv_share_per_gpu(2, 8) == 0.5 and memory.kv_share_per_gpu(8, 4) == 0.25  # replicated
    assert memory.kv_share_per_gpu(4, 16, "mla") == 1.0


def test_tp_sizes_are_powers_of_two_dividing_the_heads() -> None:
    assert memory.tp_candidates(64, 8) == [1, 2, 4, 8]
    assert memory.tp_candidates(28, 4) == [1, 2, 4]
    assert memory.tp_candidates(14, 2) == [1, 2]
    assert memory.tp_candidates(25, 25) == [1]
    assert memory.tp_candidates(64, 8, max_gpus=2) == [1, 2]


def _fp(row: dict) -> memory.Footprint:
    from catalog.fit_queries import footprint

    return footprint(row)


def test_70b_bf16_needs_two_or_four_h100s(seeded_url: str) -> None:
    from catalog import fit_queries

    engine = dbmod.make_engine(seeded_url)
    with engine.connect() as conn:
        gpu = fit_queries.gpu_spec(conn, "h100-80gb", None)
        for model_id in ("clinical_camel_70b", "wizardmath_70b", "metamath_70b"):
            (row,) = fit_queries.memory_rows(conn, model_id, ("none",))
            p = memory.plan(_fp(row), gpu, 4096)
            assert p.fits and p.tensor_parallel in (2, 4), (model_id, p)
            assert 64 % p.tensor_parallel == 0
            assert p.tried[0][0] == 1 and p.tried[0][1] > p.budget_gb  # one card is not enough
            # with gpu_memory_utilization 0.95 instead of the preset's 0.75 it fits on 2
            looser = memory.plan(memory.Footprint(**{**_fp(row).__dict__, "gpu_memory_utilization": 0.95}), gpu, 4096)
            assert looser.tensor_parallel == 2
    engine.dispose()


def test_small_gpu_uses_more_gpus_or_fp8(seeded_url: str) -> None:
    from catalog import fit_queries
    from catalog.queries import ModelFilter

    engine = dbmod.make_engine(seeded_url)
    with engine.connect() as conn:
        gpu = fit_queries.gpu_spec(conn, "rtx4090-24gb", None)
        plans = {p.model_id: p for p in fit_queries.fit(conn, ModelFilter(family="qwen3"), gpu, context=8192)}
    engine.dispose()
    # Qwen3-8B in bf16 (16.4 GB + KV + overhead) just misses one 24 GB card; online fp8 fits it.
    p = plans["qwen3_8b"]
    assert p.fits and p.tensor_parallel == 1 and p.quantization == "fp8"
    # Qwen3-14B: bf16 needs 4 cards (40 heads: tp 1, 2, 4), fp8 needs 2.
    p = plans["qwen3_14b"]
    assert p.fits and p.tensor_parallel == 2 and p.quantization == "fp8"
    # When fp8 saves no GPU, the catalogued bf16 deployment is kept.
    assert plans["qwen3_coder_30b"].quantization == "none" or plans["qwen3_coder_30b"].tensor_parallel < 8


def test_view_agrees_with_memory_module(seeded_url: str, builtin) -> None:  # type: ignore[no-untyped-def]
    engine = dbmod.make_engine(seeded_url)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(text("SELECT * FROM model_memory")).mappings()]
        presets = {r.id: r for r in conn.execute(text("SELECT id, gpu_memory_utilization FROM preset"))}
    engine.dispose()
    models = _models(builtin)
    assert len(rows) == 5 * len(models)
    checked = 0
    for r in rows:
        m = models[r["model_id"]]
        assert r["gpu_memory_utilization"] == pytest.approx(m.gpu_memory_utilization or presets[m.preset].gpu_memory_utilization)
        if r["not_estimated"] is not None:
            assert r["weights_gb"] is None and r["kv_gb_per_1k_tokens"] is None
            assert m.kind != "causal-lm" or r["quantization"] != "none"
            continue
        checked += 1
        assert isinstance(r["weights_gb"], float) and isinstance(r["kv_gb_per_1k_tokens"], float)
        expect = memory.weights_gb(m.params_b, r["quantization"], vocab_size=m.vocab_size, hidden_size=m.hidden_size)
        assert r["weights_gb"] == pytest.approx(expect, rel=1e-9)
        kv = memory.kv_bytes_per_token(m.num_layers, m.num_kv_heads, m.head_dim, architecture=m.architecture)
        assert int(r["kv_bytes_per_token"]) == kv
        assert r["kv_gb_per_1k_tokens"] == pytest.approx(kv * 1000 / 1e9, rel=1e-9)
        assert r["overhead_gb"] == pytest.approx(memory.overhead_gb(m.hidden_size), rel=1e-9)
    assert checked > 60
    by = {(r["model_id"], r["quantization"]): r for r in rows}
    # Honest gaps: encoders, encoder-decoders, quantized VLMs are "not estimated" with the reason.
    assert by[("scibert_base", "none")]["not_estimated"].startswith("encoder")
    assert by[("donut_base", "none")]["not_estimated"].startswith("encoder-decoder")
    assert "vision tower" in by[("qwen2_vl_7b", "awq")]["not_estimated"]
    assert by[("qwen2_vl_7b", "none")]["weights_gb"] == pytest.approx(8.29 * 2)  # vision tower included
    assert by[("deepseek_coder_16b", "none")]["attention"] == "mla"
    # Repos: the catalogued one, vLLM's online fp8 of 16-bit weights, else none.
    assert by[("biomistral_7b", "awq")]["repo"] == "BioMistral/BioMistral-7B-AWQ-QGS128-W4-GEMM"
    assert by[("qwen3_14b", "fp8")]["weights_source"] == "vLLM online fp8"
    assert by[("qwen3_14b", "awq")]["repo"] is None


def test_gpu_table_is_seeded(seeded_url: str) -> None:
    engine = dbmod.make_engine(seeded_url)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(text("SELECT id, memory_gb, memory_mib, bf16, fp8, source FROM gpu"))}
    engine.dispose()
    assert {"a100-40gb", "a100-80gb", "h100-80gb", "h200-141gb", "l40s-48gb", "rtx4090-24gb"} <= set(rows)
    assert all(r.source.startswith("https://") for r in rows.values())
    assert rows["l40s-48gb"].memory_mib < 48 * 1024  # ECC: 46068 MiB, not 48 GiB
    assert bool(rows["h100-80gb"].fp8) and not bool(rows["a100-80gb"].fp8)


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def fit_db(tmp_path_factory: pytest.TempPathFactory, catalog_cmd: str) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('fit') / 'fit.db'}"
    proc = run_cli(catalog_cmd, "seed", "--db", url)
    assert proc.returncode == 0, proc.stderr
    return url


def test_fit_every_model_on_h100(catalog_cmd: str, fit_db: str) -> None:
    proc = run_cli(catalog_cmd, "fit", "--gpu", "h100-80gb", "--context", "32768", "--db", fit_db, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    assert len(rows) == 43
    assert rows["qwen3_14b"]["fits"] == "yes" and rows["qwen3_14b"]["gpus"] == 1
    assert rows["yi_9b"]["fits"] == "no" and "4096" in rows["yi_9b"]["note"]  # context above its maximum
    assert rows["scibert_base"]["fits"] == "n/a" and "encoder" in rows["scibert_base"]["note"]
    table = run_cli(catalog_cmd, "fit", "--gpu", "h100-80gb", "--context", "32768", "--db", fit_db)
    assert "need_gb" in table.stdout and "fit (" in table.stdout


def test_fit_with_query_filters_and_markdown(catalog_cmd: str, fit_db: str) -> None:
    proc = run_cli(catalog_cmd, "fit", "--gpu-mem", "24", "--context", "8192", "--quantization", "awq",
                   "--license", "apache-2.0", "--format", "markdown", "--db", fit_db)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| id") and any("biomistral_7b" in line and "| awq" in line for line in lines)
    assert not any("llama31_8b" in line for line in lines)  # llama3.1 licence, and no AWQ repo catalogued
    fp8 = run_cli(catalog_cmd, "fit", "--gpu", "l40s-48gb", "--quantization", "fp8", "--kind", "causal-lm",
                  "--max-params", "10", "-f", "json", "--db", fit_db)  # fmt: skip
    rows = json.loads(fp8.stdout)
    assert rows and all(r["quantization"] == "fp8" for r in rows)


def test_fit_explain_shows_every_term(catalog_cmd: str, fit_db: str) -> None:
    proc = run_cli(catalog_cmd, "fit", "--gpu", "h100-80gb", "--explain", "clinical_camel_70b", "--db", fit_db)
    assert proc.returncode == 0, proc.stderr
    for term in ("weights", "kv per token", "kv cache", "overhead (tp 1)", "budget per gpu", "tp 1", "tp 2", "answer"):
        assert term in proc.stdout
    assert "too big" in proc.stdout and "fits on" in proc.stdout
    js = json.loads(run_cli(catalog_cmd, "fit", "--gpu", "h100-80gb", "--explain", "qwen3_8b", "-f", "json",
                            "--db", fit_db).stdout)  # fmt: skip
    assert js["plan"]["gpus"] == 1 and js["terms"][0]["term"] == "gpu"


def test_show_has_memory_per_quantization(catalog_cmd: str, fit_db: str) -> None:
    proc = run_cli(catalog_cmd, "show", "qwen3_14b", "--db", fit_db, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    mem = {r["quantization"]: r for r in json.loads(proc.stdout)["memory"]}
    assert set(mem) == {"none", "fp8", "awq"}
    assert mem["none"]["weights_gb"] == pytest.approx(29.6) and mem["awq"]["weights_gb"] < mem["fp8"]["weights_gb"]
    assert mem["none"]["kv_gb_per_1k_tokens"] == pytest.approx(2 * 40 * 8 * 128 * 2 * 1000 / 1e9, abs=1e-4)
    table = run_cli(catalog_cmd, "show", "qwen3_14b", "--db", fit_db).stdout
    assert "kv_gb_per_1k_tokens" in table


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--gpu", "h100"], "unknown GPU 'h100'; valid: rtx4090-24gb, a100-40gb, l40s-48gb, a100-80gb, h100-80gb, h200-141gb"),
        (["--gpu", "h100-80gb", "--explain", "qwen3_14b", "--context", "200000"],
         "context 200000 is above qwen3_14b's maximum context of 131072 tokens"),
        (["--gpu", "h100-80gb", "--explain", "qwen3_14b", "--quantization", "awq"],
         "qwen3_14b has no awq weights in the catalog; it has: none (Qwen/Qwen3-14B), fp8 (Qwen/Qwen3-14B)"),
        (["--gpu", "h100-80gb", "--explain", "nope"], "unknown model 'nope'; valid:"),
        (["--gpu", "h100-80gb", "--gpu-mem", "24"], "give exactly one of --gpu ID or --gpu-mem GB"),
        ([], "give exactly one of --gpu ID or --gpu-mem GB"),
        (["--gpu-mem", "24", "--quantization", "int3"], "unknown quantization 'int3'; valid:"),
        (["--gpu-mem", "24", "--license", "apache"], "unknown license 'apache'; valid:"),
    ],
)
def test_fit_bad_input_is_one_line_exit_2(catalog_cmd: str, fit_db: str, args: list[str], needle: str) -> None:
    proc = run_cli(catalog_cmd, "fit", *args, "--db", fit_db)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


HEAVY = ("torch", "transformers", "datasets", "vllm")
IMPORT_CHECK = """
import sys

from catalog.cli import app
for args in (["fit", "--gpu", "h100-80gb", "--db", URL], ["fit", "--gpu-mem", "24", "--explain", "qwen3_8b", "--db", URL],
             ["show", "qwen3_14b", "--db", URL]):
    try:
        app(args)
    except SystemExit as e:
        assert e.code in (0, None), (args, e.code)
print("HEAVY:" + ",".join(sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)))
"""


def test_fit_never_imports_heavy_libraries(fit_db: str) -> None:
    code = f"URL = {fit_db!r}\nHEAVY = {HEAVY!r}\n" + IMPORT_CHECK
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY:"
