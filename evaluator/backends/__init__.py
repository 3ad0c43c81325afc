"""Generation backends. Each module imports its heavy library lazily, inside the backend."""

from __future__ import annotations

from typing import Any

from evaluator.backends.base import Backend, Completion, GenerationParams

BACKENDS = ("hf", "vllm", "openai")


def create_backend(name: str, model_path: str, **options: Any) -> Backend:
    """Build the backend ``name`` for a model at ``model_path`` (hub id or local folder)."""
    if name == "hf":
        from evaluator.backends.hf import HFBackend

        return HFBackend(model_path, **options)
    from catalog.db import CatalogError

    raise CatalogError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "Completion", "GenerationParams", "create_backend"]
