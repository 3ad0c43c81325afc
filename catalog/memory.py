"""GPU memory planner: pure arithmetic, no database, no heavy imports.

What vLLM needs on each GPU to serve a model is estimated as

    weights / tp  +  KV cache for the context  +  runtime overhead   <=   gpu_memory_utilization x usable memory

and the smallest tensor-parallel size ``tp`` (a power of two that divides the attention
heads) for which that holds is the answer.  Every constant below is documented, with where
it comes from, in docs/memory.md; the SQL view ``model_memory`` (migration 0003) computes the
per-model terms with the same constants, and a test checks that the two agree.

Units: GB = 10^9 bytes (as ``model.weights_gb`` and the Hugging Face file listings use);
GiB = 2^30 bytes (what nvidia-smi and vLLM's logs print).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

GB = 1_000_000_000
GIB = 1 << 30

# --------------------------------------------------------------------------- weights

INT4_GROUP_SIZE = 128
"""AWQ/GPTQ group size of every 4-bit repo in the catalog (the ``-QGS128`` / ``g128`` convention)."""


def int4_bytes_per_param(group_size: int = INT4_GROUP_SIZE) -> float:
    """Bytes per quantized parameter of a 4-bit AWQ/GPTQ linear layer.

    Per ``group_size`` input weights there is one fp16 scale (2 bytes) and one 4-bit zero
    point packed eight to an int32 (0.5 bytes), on top of the 4-bit weights themselves:
    0.5 + 2.5 / 128 = 0.51953125 bytes/param (GPTQ's g_idx, 4 bytes per input row, is
    negligible and ignored).
    """
    return 0.5 + 2.5 / group_size


BYTES_PER_PARAM: dict[str, float] = {
    "none": 2.0,  # bf16/fp16; fp32 checkpoints are loaded by vLLM in 16-bit too
    "fp8": 1.0,  # per-tensor/per-channel scales are negligible
    "int8": 1.0,  # W8A8; per-channel scales negligible
    "awq": int4_bytes_per_param(),
    "gptq": int4_bytes_per_param(),
}
"""Bytes per parameter of the quantized layers, by catalog quantization."""

WEIGHT_FORMATS: dict[str, str] = {
    "none": "bf16/fp16",
    "fp8": "fp8 (embeddings, lm_head 16-bit)",
    "int8": "int8 W8A8 (embeddings, lm_head 16-bit)",
    "awq": "int4 g128 AWQ (embeddings, lm_head 16-bit)",
    "gptq": "int4 g128 GPTQ (embeddings, lm_head 16-bit)",
}
QUANTIZATION_ORDER = ("none", "fp8", "int8", "awq", "gptq")


def embedding_params_b(vocab_size: int, hidden_size: int) -> float:
    """Parameters of the input embedding plus the lm_head, in billions.

    Quantized repos (AWQ, GPTQ, FP8 checkpoints) keep both in 16-bit.  The catalog does not
    record ``tie_word_embeddings``, so the head is always counted as a separate matrix; for
    models that tie it this under-counts the quantized body by vocab x hidden parameters
    (see docs/memory.md, "known misses").
    """
    return 2 * vocab_size * hidden_size / GB


def weights_gb(
    params_b: float,
    quantization: str,
    *,
    vocab_size: Optional[int] = None,
    hidden_size: Optional[int] = None,
) -> float:
    """Size of the weights in GPU memory (and on disk), GB.

    ``none``: params x 2.  Quantized: the embedding and lm_head stay 16-bit, every other
    parameter takes ``BYTES_PER_PARAM[quantization]``.
    """
    if quantization not in BYTES_PER_PARAM:
        raise ValueError(f"unknown quantization {quantization!r}")
    if quantization == "none":
        return params_b * 2.0
    if vocab_size is None or hidden_size is None:
        raise ValueError("a quantized estimate needs vocab_size and hidden_size")
    emb = embedding_params_b(vocab_size, hidden_size)
    return (params_b - emb) * BYTES_PER_PARAM[quantization] + emb * 2.0


# --------------------------------------------------------------------------- KV cache

KV_CACHE_BYTES = 2
"""vLLM's default ``kv_cache_dtype="auto"`` stores K and V in the model dtype (16-bit),
whatever the weight quantization."""

MLA_LATENT_DIM: dict[str, int] = {
    "DeepseekV2ForCausalLM": 512 + 64,
    "DeepseekV3ForCausalLM": 512 + 64,
}
"""Multi-head latent attention caches one compressed vector per layer and token
(kv_lora_rank 512 + qk_rope_head_dim 64), not K and V per head, and vLLM replicates it on
every tensor-parallel rank."""


def kv_bytes_per_token(
    num_layers: int, num_kv_heads: int, head_dim: int, *, architecture: str = "", kv_bytes: int = KV_CACHE_BYTES
) -> int:
    """KV-cache bytes one token occupies across all layers (the whole model, TP 1).

    Standard attention: 2 (K and V) x layers x kv_heads x head_dim x bytes.
    MLA (DeepSeek-V2/V3): layers x (kv_lora_rank + rope dim) x bytes.
    """
    if architecture in MLA_LATENT_DIM:
        return num_layers * MLA_LATENT_DIM[architecture] * kv_bytes
    return 2 * num_layers * num_kv_heads * head_dim * kv_bytes


def kv_cache_gb(per_token_bytes: int, tokens: int, sequences: int = 1) -> float:
    """KV cache for ``sequences`` concurrent sequences of ``tokens`` tokens each, GB (TP 1)."""
    return per_token_bytes * tokens * sequences / GB


def kv_share_per_gpu(tp: int, num_kv_heads: int, attention: str = "gqa") -> float:
    """Fraction of the KV cache one GPU holds at tensor-parallel size ``tp``.

    KV heads are split across ranks; when ``tp`` exceeds the KV heads each rank keeps one
    (replicated) head.  An MLA latent cache is replicated on every rank.
    """
    if attention == "mla":
        return 1.0
    return max(num_kv_heads / tp, 1.0) / num_kv_heads


# --------------------------------------------------------------------------- overhead

NON_TORCH_GB = 2.0
"""CUDA context, cuBLAS workspaces and other allocations outside PyTorch's allocator, per
GPU.  vLLM's profiler logged 1.79 GiB (1.92 GB) for Llama-3-8B on one H100 (PR #10511)."""
TP_NON_TORCH_GB = 2.0
"""Extra non-torch memory per GPU when tp > 1 (NCCL buffers): the same log shows 3.58 GiB at
tp 2, i.e. another 1.79 GiB."""
CUDA_GRAPH_GB = 1.0
"""CUDA-graph capture.  Typically well under a GiB for a 7-8B model; 2.4 GiB was reported
for a 34B model on RTX 4090s at tp 4 (vLLM issue #7553)."""
PROFILE_TOKENS = 8192
"""Tokens in vLLM's profiling forward pass (``max_num_batched_tokens``, 8192 by default for
the ``LLM`` class and when max_model_len is 8192)."""
ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN = 40
"""Peak activation memory per profiled token per unit of hidden size: 1.26 GiB for
Llama-3-8B (hidden 4096) over 8192 tokens in PR #10511's log = 40.3 bytes."""
DRIVER_RESERVED_GIB = 0.45
"""What CUDA reports as total memory is less than nvidia-smi's total: 79.22 GiB against
81559 MiB (79.65 GiB) on an H100; vLLM multiplies gpu_memory_utilization by CUDA's figure."""

MAX_GPUS = 8
"""Tensor parallelism is planned within one node of at most 8 GPUs."""


def activation_gb(hidden_size: int) -> float:
    """Peak activation memory of vLLM's profiling pass, GB."""
    return PROFILE_TOKENS * hidden_size * ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN / GB


def overhead_gb(hidden_size: int, tp: int = 1) -> float:
    """Runtime memory per GPU besides weights and KV cache: non-torch + CUDA graphs + activations."""
    return NON_TORCH_GB + (TP_NON_TORCH_GB if tp > 1 else 0.0) + CUDA_GRAPH_GB + activation_gb(hidden_size)


# --------------------------------------------------------------------------- GPUs


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model: memory as marketed, as nvidia-smi reports it, and number formats."""

    id: str
    name: str
    memory_gb: float
    memory_mib: int
    bf16: bool = True
    fp8: Optional[bool] = None  # None: unknown (a --gpu-mem GPU)

    @property
    def usable_gb(self) -> float:
        """Total memory CUDA reports (what vLLM's gpu_memory_utilization is a fraction of), GB."""
        return (self.memory_mib / 1024 - DRIVER_RESERVED_GIB) * GIB / GB

    @classmethod
    def custom(cls, memory_gib: float) -> "GpuSpec":
        """A GPU given only by its marketed memory (``--gpu-mem 24``), read as GiB like
        vendors' figures (a "24 GB" RTX 4090 reports 24564 MiB)."""
        return cls(id=f"custom-{memory_gib:g}gb", name=f"custom {memory_gib:g} GB GPU",
                   memory_gb=memory_gib, memory_mib=int(round(memory_gib * 1024)))  # fmt: skip


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Footprint:
    """The per-model terms of one (model, quantization) row of the ``model_memory`` view."""

    model_id: str
    quantization: str
    weights_gb: Optional[float]
    kv_bytes_per_token: Optional[int]
    overhead_gb: Optional[float]
    num_attention_heads: Optional[int]
    num_kv_heads: Optional[int]
    attention: Optional[str]
    gpu_memory_utilization: float
    max_context: int
    max_model_len: Optional[int] = None
    repo: Optional[str] = None
    not_estimated: Optional[str] = None


@dataclass
class Term:
    """One line of ``catalog fit --explain``."""

    term: str
    value: str
    how: str


@dataclass
class Plan:
    """The answer for one model on one GPU type: fits? on how many GPUs? what per GPU?"""

    model_id: str
    quantization: str
    context: int
    sequences: int
    tensor_parallel: Optional[int]
    fits: Optional[bool]
    per_gpu_gb: Optional[float] = None
    budget_gb: Optional[float] = None
    weights_gb: Optional[float] = None
    kv_gb: Optional[float] = None
    overhead_gb: Optional[float] = None
    note: str = ""
    tried: list[tuple[int, float]] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        """A flat row for rendering (GB figures per GPU at the chosen tensor-parallel size)."""
        r = lambda v: None if v is None else round(v, 2)  # noqa: E731
        return {
            "id": self.model_id,
            "quantization": self.quantization,
            "fits": {True: "yes", False: "no", None: "n/a"}[self.fits],
            "gpus": self.tensor_parallel,
            "need_gb": r(self.per_gpu_gb),
            "budget_gb": r(self.budget_gb),
            "weights_gb": r(self.weights_gb),
            "kv_gb": r(self.kv_gb),
            "overhead_gb": r(self.overhead_gb),
            "context": self.context,
            "note": self.note,
        }


def tp_candidates(num_attention_heads: int, num_kv_heads: Optional[int] = None, max_gpus: int = MAX_GPUS) -> list[int]:
    """Tensor-parallel sizes vLLM accepts: powers of two up to ``max_gpus`` that divide the
    attention heads (and where KV heads divide evenly or are replicated)."""
    sizes = []
    tp = 1
    while tp <= max_gpus:
        kv_ok = num_kv_heads is None or num_kv_heads % tp == 0 or tp % num_kv_heads == 0
        if num_attention_heads % tp == 0 and kv_ok:
            sizes.append(tp)
        tp *= 2
    return sizes


def per_gpu_need_gb(fp: Footprint, tp: int, context: int, sequences: int = 1) -> tuple[float, float, float]:
    """(weights, KV cache, overhead) on each GPU at tensor-parallel size ``tp``, GB."""
    assert fp.weights_gb is not None and fp.kv_bytes_per_token is not None and fp.overhead_gb is not None
    kv_total = kv_cache_gb(fp.kv_bytes_per_token, context, sequences)
    kv = kv_total * kv_share_per_gpu(tp, fp.num_kv_heads or 1, fp.attention or "gqa")
    overhead = fp.overhead_gb + (TP_NON_TORCH_GB if tp > 1 else 0.0)
    return fp.weights_gb / tp, kv, overhead


def plan(fp: Footprint, gpu: GpuSpec, context: int, sequences: int = 1, max_gpus: int = MAX_GPUS) -> Plan:
    """The smallest tensor-parallel size on which ``fp`` fits ``gpu`` at ``context`` tokens."""
    p = Plan(model_id=fp.model_id, quantization=fp.quantization, context=context, sequences=sequences,
             tensor_parallel=None, fits=None)  # fmt: skip
    if fp.not_estimated:
        p.note = f"not estimated: {fp.not_estimated}"
        return p
    if context > fp.max_context:
        p.fits = False
        p.note = f"context {context} is above the model's maximum of {fp.max_context} tokens"
        return p
    budget = fp.gpu_memory_utilization * gpu.usable_gb
    p.budget_gb = budget
    sizes = tp_candidates(fp.num_attention_heads or 1, fp.num_kv_heads, max_gpus)
    notes = []
    if fp.quantization == "fp8" and gpu.fp8 is False:
        notes.append("no FP8 tensor cores: vLLM runs FP8 weight-only (Marlin)")
    elif fp.quantization == "fp8" and gpu.fp8 is None:
        notes.append("check the GPU has FP8 tensor cores (else vLLM runs FP8 weight-only)")
    if fp.max_model_len is not None and context > fp.max_model_len:
        notes.append(f"raise max_model_len from {fp.max_model_len}")
    for tp in sizes:
        w, kv, oh = per_gpu_need_gb(fp, tp, context, sequences)
        need = w + kv + oh
        p.tried.append((tp, need))
        p.tensor_parallel, p.per_gpu_gb, p.weights_gb, p.kv_gb, p.overhead_gb = tp, need, w, kv, oh
        if need <= budget:
            p.fits = True
            p.note = "; ".join(notes)
            return p
    p.fits = False
    largest = sizes[-1] if sizes else 1
    notes.insert(0, f"needs more than {largest} GPU{'s' if largest > 1 else ''} "
                    f"(tensor-parallel sizes allowed by {fp.num_attention_heads} heads: {sizes})")  # fmt: skip
    p.note = "; ".join(notes)
    return p


def best_plan(plans: Sequence[Plan]) -> Plan:
    """Among candidate quantizations: the one that fits on the fewest GPUs; ties keep the
    earlier (higher-precision, catalogued) candidate; when none fits, the first."""
    fitting = [p for p in plans if p.fits]
    if not fitting:
        return plans[0]
    return min(fitting, key=lambda p: (p.tensor_parallel or 0, plans.index(p)))


def explain(fp: Footprint, gpu: GpuSpec, context: int, sequences: int = 1, *,
            params_b: Optional[float] = None, vocab_size: Optional[int] = None,
            hidden_size: Optional[int] = None, num_layers: Optional[int] = None,
            head_dim: Optional[int] = None, architecture: str = "",
            max_gpus: int = MAX_GPUS) -> tuple[Plan, list[Term]]:  # fmt: skip
    """``plan`` plus every term that went into it, for ``catalog fit --explain``."""
    p = plan(fp, gpu, context, sequences, max_gpus)
    t: list[Term] = []
    add = lambda term, value, how="": t.append(Term(term, value, how))  # noqa: E731
    add("gpu", f"{gpu.name}: {gpu.memory_gb:g} GB marketed, {gpu.memory_mib} MiB per nvidia-smi",
        f"usable {gpu.usable_gb:.2f} GB = ({gpu.memory_mib}/1024 - {DRIVER_RESERVED_GIB} GiB driver reserve) x 2^30/10^9")
    add("quantization", f"{fp.quantization} ({WEIGHT_FORMATS[fp.quantization]})", f"weights from {fp.repo or '-'}")
    if fp.not_estimated:
        add("not estimated", fp.not_estimated)
        return p, t
    if params_b is not None:
        if fp.quantization == "none":
            add("weights", f"{fp.weights_gb:.2f} GB", f"{params_b:g}B params x 2 bytes")
        elif vocab_size and hidden_size:
            emb = embedding_params_b(vocab_size, hidden_size)
            add("weights", f"{fp.weights_gb:.2f} GB",
                f"({params_b:g}B - {emb:.3f}B embedding+lm_head) x {BYTES_PER_PARAM[fp.quantization]:.5f} bytes"
                f" + {emb:.3f}B x 2 bytes")  # fmt: skip
    if fp.kv_bytes_per_token is not None:
        if fp.attention == "mla" and num_layers:
            how = f"{num_layers} layers x {MLA_LATENT_DIM.get(architecture, 576)} latent dims x {KV_CACHE_BYTES} bytes (MLA)"
        elif num_layers and head_dim:
            how = f"2 x {num_layers} layers x {fp.num_kv_heads} kv_heads x {head_dim} head_dim x {KV_CACHE_BYTES} bytes"
        else:
            how = ""
        add("kv per token", f"{fp.kv_bytes_per_token:,} bytes", how)
        total = kv_cache_gb(fp.kv_bytes_per_token, context, sequences)
        add("kv cache", f"{total:.2f} GB", f"{fp.kv_bytes_per_token:,} bytes x {context} tokens x {sequences} sequence(s)")
    if hidden_size:
        add("overhead (tp 1)", f"{fp.overhead_gb:.2f} GB",
            f"{NON_TORCH_GB:g} non-torch + {CUDA_GRAPH_GB:g} CUDA graphs + {PROFILE_TOKENS} tokens x {hidden_size} hidden"
            f" x {ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN} bytes activations; +{TP_NON_TORCH_GB:g} per GPU when tp > 1")  # fmt: skip
    if p.budget_gb is not None:
        add("budget per gpu", f"{p.budget_gb:.2f} GB", f"gpu_memory_utilization {fp.gpu_memory_utilization:g} x {gpu.usable_gb:.2f} GB")
    for tp, need in p.tried:
        w, kv, oh = per_gpu_need_gb(fp, tp, context, sequences)
        verdict = "fits" if p.budget_gb is not None and need <= p.budget_gb else "too big"
        add(f"tp {tp}", f"{need:.2f} GB per gpu ({verdict})", f"{w:.2f} weights + {kv:.2f} kv + {oh:.2f} overhead")
    add("answer", ("fits on " + f"{p.tensor_parallel} GPU" + ("s" if (p.tensor_parallel or 1) > 1 else "")) if p.fits
        else "does not fit", p.note)  # fmt: skip
    return p, t
