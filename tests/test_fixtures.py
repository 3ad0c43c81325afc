"""The built-in fixtures: the 43 models, their categories, and the validator's errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from catalog import fixtures as fx

EXPECTED = {
    "coding_specialists": ["qwen3_8b", "qwen3_14b", "codestral_22b", "qwen3_coder_30b", "deepseek_coder_16b"],
    "mathematical_reasoning": ["qwen25_math_7b", "deepseek_math_7b", "wizardmath_70b", "metamath_70b", "qwen25_7b"],
    "biomedical_specialists": [
        "biomistral_7b", "biomistral_7b_unquantized", "biomedlm_7b", "medalpaca_7b", "biogpt",
        "bio_clinicalbert", "medalpaca_13b", "clinical_camel_70b", "pubmedbert_large", "biogpt_large",
    ],
    "general_purpose": [
        "llama31_8b", "mistral_7b", "olmo2_13b", "yi_9b", "phi35_mini", "gemma2_9b", "qwen2_vl_7b",
        "donut_base", "layoutlmv3_base", "scibert_base", "specter2_base", "longformer_large",
        "qwen25_0_5b", "qwen25_3b", "mistral_nemo_12b", "yi_1_5_34b", "safety_bert", "qwen25_vl_7b",
        "minicpm_v_26", "llava_next_vicuna_7b", "internvl2_8b", "gemma2_2b", "llama32_3b",
    ],
}  # fmt: skip


def test_43_models_with_the_given_keys_and_primary_categories(builtin) -> None:
    models = builtin.of("models")
    assert len(models) == 43
    by_category: dict[str, list[str]] = {}
    for m in models:
        by_category.setdefault(m.primary_category, []).append(m.id)
    assert {k: sorted(v) for k, v in by_category.items()} == {k: sorted(v) for k, v in EXPECTED.items()}
    assert Counter(m.primary_category for m in models) == {
        "coding_specialists": 5, "mathematical_reasoning": 5, "biomedical_specialists": 10, "general_purpose": 23,
    }  # fmt: skip


def test_every_model_has_exactly_one_primary_category_and_a_source(builtin) -> None:
    for m in builtin.of("models"):
        assert m.primary_category not in m.other_categories, m.id
        assert m.sources and all(s.startswith("http") for s in m.sources), m.id


def test_planned_categories_have_members_and_operational_ones_have_datasets(builtin) -> None:
    cats = {c.id: c for c in builtin.of("categories")}
    planned = {c for c, e in cats.items() if e.status == "planned"}
    assert planned == {"multimodal_processing", "scientific_research", "efficiency_optimized", "safety_alignment"}
    members = Counter(c for m in builtin.of("models") for c in m.other_categories)
    for c in planned:
        assert members[c] > 0, c
    for c, e in cats.items():
        if e.status == "operational":
            assert e.datasets.primary, c


def test_facts_that_the_keys_promise(builtin) -> None:
    m = {e.id: e for e in builtin.of("models")}
    assert m["qwen3_8b"].hub_id == "Qwen/Qwen3-8B"
    assert m["qwen3_14b"].hub_id == "Qwen/Qwen3-14B"
    assert m["llama31_8b"].license_id == "llama3.1" and m["llama31_8b"].gated
    assert m["gemma2_9b"].license_id == "gemma"
    assert m["biomistral_7b"].quantization == "awq" and m["biomistral_7b"].quantized_hub_id
    assert m["biomistral_7b_unquantized"].quantization == "none"
    for key in ("bio_clinicalbert", "pubmedbert_large", "scibert_base", "specter2_base", "safety_bert"):
        assert m[key].kind == "encoder", key
    for key in ("qwen3_coder_30b", "deepseek_coder_16b"):
        assert m[key].active_params_b is not None and m[key].active_params_b < m[key].params_b, key
    for e in m.values():
        assert e.max_context >= e.native_context
        if e.max_model_len is not None:
            assert e.max_model_len <= e.max_context


def test_size_buckets_tile_zero_to_infinity(builtin) -> None:
    buckets = sorted(builtin.of("size_buckets"), key=lambda b: b.min_params_b)
    assert [b.id for b in buckets] == ["tiny", "small", "small_medium", "medium", "large"]
    assert buckets[0].min_params_b == 0 and buckets[-1].max_params_b is None
    for lower, upper in zip(buckets, buckets[1:]):
        assert lower.max_params_b == upper.min_params_b


def test_presets(builtin) -> None:
    assert {p.id: p.gpu_memory_utilization for p in builtin.of("presets")} == {
        "balanced": 0.85, "performance": 0.90, "memory_optimized": 0.75,
    }  # fmt: skip


def test_datasets_cover_the_benchmarks(builtin) -> None:
    ids = {d.id for d in builtin.of("datasets")}
    assert {"humaneval", "mbpp", "bigcodebench", "gsm8k", "math", "pubmedqa", "medqa", "bioasq",
            "mediqa", "mmlu", "arc_challenge"} <= ids  # fmt: skip


GOOD_MODEL = """
models:
  - id: my_model
    name: My Model
    hub_id: me/my-model
    family: mine
    architecture: LlamaForCausalLM
    kind: causal-lm
    params_b: 1.5
    native_context: 4096
    max_context: 4096
    license_id: apache-2.0
    primary_category: general_purpose
    sources: [https://huggingface.co/me/my-model]
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "user.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "old,new,expect",
    [
        ("kind: causal-lm", "kind: decoder", "field 'kind'"),
        ("params_b: 1.5", "params_b: -1", "field 'params_b'"),
        ("    sources: [https://huggingface.co/me/my-model]\n", "", "field 'sources'"),
        ("max_context: 4096", "max_context: 100", "below native_context"),
        ("name: My Model", "name: My Model\n    colour: blue", "field 'colour'"),
    ],
)
def test_malformed_entry_names_file_entry_and_field(tmp_path: Path, old: str, new: str, expect: str) -> None:
    path = _write(tmp_path, GOOD_MODEL.replace(old, new))
    with pytest.raises(fx.FixtureError) as err:
        fx.read_files([path])
    msg = str(err.value)
    assert str(path) in msg and "models[0] (id=my_model)" in msg and expect in msg
    assert "\n" not in msg


def test_invalid_yaml_and_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(fx.FixtureError, match=r"line \d+.*invalid YAML"):
        fx.read_files([_write(tmp_path, "models:\n  - id: [unclosed\n")])
    with pytest.raises(fx.FixtureError, match="unknown section 'modelz'; valid: licenses"):
        fx.read_files([_write(tmp_path, "modelz: []\n")])
    with pytest.raises(fx.FixtureError, match="does not exist"):
        fx.read_files([tmp_path / "missing.yaml"])


def test_duplicate_key_across_files_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_MODEL.replace("id: my_model", "id: qwen3_14b"))
    with pytest.raises(fx.FixtureError, match="duplicate of"):
        fx.read_files([*fx.builtin_fixture_files(), path])
