"""Generation backends. Each module imports its heavy library lazily, inside the backend."""

from __future__ import annotations

import importlib.util
import shutil
from typing import TYPE_CHECKING

from evaluator.backends.base import Backend, Completion, GenerationParams

if TYPE_CHECKING:
    from evaluator.runner import RunPlan

BACKENDS = ("hf", "vllm", "openai")


def default_backend() -> str:
    """vllm when an NVIDIA GPU and vLLM are present, else transformers (checked without importing either)."""
    if shutil.which("nvidia-smi") and importlib.util.find_spec("vllm") is not None:
        return "vllm"
    return "hf"


def create_backend(plan: "RunPlan") -> Backend:
    """Build the plan's backend for its model (hub id or local folder), configured from the plan."""
    if plan.backend == "hf":
        from evaluator.backends.hf import HFBackend

        return HFBackend(plan.model_path, **plan.engine_options())
    if plan.backend == "vllm":
        from evaluator.backends.vllm import VLLMBackend

        return VLLMBackend.from_plan(plan)
    if plan.backend == "openai":
        from evaluator.backends.openai import OpenAIBackend

        return OpenAIBackend(
            plan.model_path, base_url=plan.base_url, api_key_env=plan.api_key_env,
            max_concurrent=plan.max_concurrent, request_timeout=plan.request_timeout,
            chat=plan.chat, chat_template=bool(plan.model.get("chat_template")),
        )  # fmt: skip
    from catalog.db import CatalogError

    raise CatalogError(f"unknown backend {plan.backend!r}; valid: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "Completion", "GenerationParams", "create_backend", "default_backend"]
