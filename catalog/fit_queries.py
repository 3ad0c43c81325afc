"""`catalog fit` as SQL: the GPU table and the model_memory view, filtered like `catalog query`.

The per-model terms (weights, KV bytes per token, overhead) come from the ``model_memory``
view; the per-GPU arithmetic (budget, tensor-parallel size) is catalog/memory.py.  Only
SQLAlchemy Core is used, as in catalog/queries.py, so the command starts fast.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from sqlalchemy import Boolean, Connection, and_, column, select, table

from catalog import memory
from catalog.db import CatalogError
from catalog.queries import ModelFilter, check_choice, filter_clauses, model_facets, validate_filter
from catalog.vocab import QUANTIZATIONS

gpu_t = table(
    "gpu", column("id"), column("name"), column("architecture"), column("memory_gb"), column("memory_mib"),
    column("bf16", Boolean), column("fp8", Boolean), column("source"), column("memory_source"), column("notes"),
)  # fmt: skip

MEMORY_COLUMNS = (
    "model_id", "quantization", "weight_format", "repo", "weights_source", "not_estimated", "params_b",
    "embedding_params_b", "weights_gb", "kv_bytes_per_token", "kv_gb_per_1k_tokens", "overhead_gb",
    "attention", "num_layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim",
    "vocab_size", "max_context", "max_model_len", "gpu_memory_utilization", "max_num_seqs",
)  # fmt: skip
model_memory = table("model_memory", *(column(c) for c in MEMORY_COLUMNS))


def gpus(conn: Connection) -> list[dict[str, Any]]:
    """Every GPU of the catalog, smallest memory first."""
    stmt = select(gpu_t).order_by(gpu_t.c.memory_gb, gpu_t.c.id)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def gpu_spec(conn: Connection, gpu_id: Optional[str], gpu_mem: Optional[float]) -> memory.GpuSpec:
    """The GPU named by ``--gpu`` or sized by ``--gpu-mem`` (exactly one of them)."""
    if (gpu_id is None) == (gpu_mem is None):
        raise CatalogError("give exactly one of --gpu ID or --gpu-mem GB")
    if gpu_mem is not None:
        if gpu_mem <= 0:
            raise CatalogError(f"--gpu-mem must be positive (got {gpu_mem:g})")
        return memory.GpuSpec.custom(gpu_mem)
    rows = {g["id"]: g for g in gpus(conn)}
    check_choice("GPU", gpu_id, list(rows))
    g = rows[gpu_id]
    return memory.GpuSpec(id=g["id"], name=g["name"], memory_gb=float(g["memory_gb"]),
                          memory_mib=int(g["memory_mib"]), bf16=bool(g["bf16"]), fp8=bool(g["fp8"]))  # fmt: skip


def footprint(row: dict[str, Any]) -> memory.Footprint:
    """A model_memory row as the planner's input."""
    f = lambda k: None if row.get(k) is None else float(row[k])  # noqa: E731
    i = lambda k: None if row.get(k) is None else int(row[k])  # noqa: E731
    return memory.Footprint(
        model_id=row["model_id"], quantization=row["quantization"], weights_gb=f("weights_gb"),
        kv_bytes_per_token=i("kv_bytes_per_token"), overhead_gb=f("overhead_gb"),
        num_attention_heads=i("num_attention_heads"), num_kv_heads=i("num_kv_heads"),
        attention=row.get("attention"), gpu_memory_utilization=float(row["gpu_memory_utilization"]),
        max_context=int(row["max_context"]), max_model_len=i("max_model_len"), repo=row.get("repo"),
        not_estimated=row.get("not_estimated"),
    )  # fmt: skip


def memory_rows(conn: Connection, model_id: Optional[str] = None,
                quantizations: Optional[tuple[str, ...]] = None, models: Any = None) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of the model_memory view (one model, a subquery of model ids, some quantizations, or all)."""
    stmt = select(model_memory)
    if models is not None:
        stmt = stmt.where(model_memory.c.model_id.in_(models))
    if model_id is not None:
        stmt = stmt.where(model_memory.c.model_id == model_id)
    if quantizations is not None:
        stmt = stmt.where(model_memory.c.quantization.in_(quantizations))
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    order = {q: i for i, q in enumerate(memory.QUANTIZATION_ORDER)}
    return sorted(rows, key=lambda r: (r["model_id"], order.get(r["quantization"], 99)))


def _candidates(rows: list[dict[str, Any]], deployment: str, quantization: Optional[str]) -> list[dict[str, Any]]:
    """The quantizations a model can be served at, in order of preference.

    With ``--quantization Q``: Q, if the catalog has weights for it.  Without: the catalogued
    deployment, then vLLM's online fp8 of 16-bit weights.
    """
    by_q = {r["quantization"]: r for r in rows if r["repo"] is not None}
    if quantization is not None:
        return [by_q[quantization]] if quantization in by_q else []
    wanted = [deployment] + (["fp8"] if deployment == "none" else [])
    return [by_q[q] for q in wanted if q in by_q]


def fit(
    conn: Connection,
    f: ModelFilter,
    gpu: memory.GpuSpec,
    *,
    context: Optional[int] = None,
    sequences: int = 1,
    max_gpus: int = memory.MAX_GPUS,
) -> list[memory.Plan]:
    """A plan for every model matching ``f`` (``f.quantization`` = plan at that quantization,
    listing only models the catalog has weights for at it)."""
    validate_filter(conn, f)
    _check_numbers(context, sequences, max_gpus)
    unquantized = dataclasses.replace(f, quantization=None)
    where = and_(True, *filter_clauses(unquantized, dialect=conn.dialect.name))
    deployments = {r.id: r.quantization for r in conn.execute(
        select(model_facets.c.id, model_facets.c.quantization).where(where))}  # fmt: skip
    rows_by_model: dict[str, list[dict[str, Any]]] = {}
    for r in memory_rows(conn, models=select(model_facets.c.id).where(where)):
        rows_by_model.setdefault(r["model_id"], []).append(r)
    plans = []
    for model_id in sorted(rows_by_model):
        rows = rows_by_model[model_id]
        cands = _candidates(rows, deployments[model_id], f.quantization)
        if not cands:
            continue
        tokens = context if context is not None else _default_context(cands[0])
        options = [memory.plan(footprint(c), gpu, tokens, sequences, max_gpus) for c in cands]
        plans.append(memory.best_plan(options))
    return plans


def explain(
    conn: Connection,
    model_id: str,
    gpu: memory.GpuSpec,
    *,
    context: Optional[int] = None,
    sequences: int = 1,
    quantization: Optional[str] = None,
    max_gpus: int = memory.MAX_GPUS,
) -> tuple[memory.Plan, list[memory.Term]]:
    """Every term of the plan for one model; refuses what the model cannot do."""
    from catalog.queries import _choice_error, model_ids

    _check_numbers(context, sequences, max_gpus)
    if quantization is not None:
        check_choice("quantization", quantization, QUANTIZATIONS)
    rows = memory_rows(conn, model_id)
    if not rows:
        raise _choice_error("model", model_id, model_ids(conn))
    deployment = conn.execute(select(model_facets.c.quantization).where(model_facets.c.id == model_id)).scalar_one()
    cands = _candidates(rows, deployment, quantization)
    if not cands:
        have = ", ".join(f"{r['quantization']} ({r['repo']})" for r in rows if r["repo"] is not None)
        raise CatalogError(f"{model_id} has no {quantization} weights in the catalog; it has: {have}")
    first = cands[0]
    if context is not None and context > int(first["max_context"]):
        raise CatalogError(
            f"context {context} is above {model_id}'s maximum context of {first['max_context']} tokens"
        )
    tokens = context if context is not None else _default_context(first)
    options = [memory.plan(footprint(c), gpu, tokens, sequences, max_gpus) for c in cands]
    chosen = cands[options.index(memory.best_plan(options))]
    i = lambda k: None if chosen.get(k) is None else int(chosen[k])  # noqa: E731
    return memory.explain(
        footprint(chosen), gpu, tokens, sequences, params_b=float(chosen["params_b"]),
        vocab_size=i("vocab_size"), hidden_size=i("hidden_size"), num_layers=i("num_layers"),
        head_dim=i("head_dim"), architecture=_architecture(conn, model_id), max_gpus=max_gpus,
    )  # fmt: skip


def _architecture(conn: Connection, model_id: str) -> str:
    return str(conn.execute(select(model_facets.c.architecture).where(model_facets.c.id == model_id)).scalar_one())


def _default_context(row: dict[str, Any]) -> int:
    """Without --context: the context the model is configured to serve (max_model_len)."""
    return int(row["max_model_len"] or row["max_context"])


def _check_numbers(context: Optional[int], sequences: int, max_gpus: int) -> None:
    if context is not None and context < 1:
        raise CatalogError(f"--context must be at least 1 token (got {context})")
    if sequences < 1:
        raise CatalogError(f"--seqs must be at least 1 (got {sequences})")
    if max_gpus < 1:
        raise CatalogError(f"--max-gpus must be at least 1 (got {max_gpus})")


def show_memory(conn: Connection, model_id: str) -> list[dict[str, Any]]:
    """Weights and KV cache per 1k tokens at bf16, fp8 and AWQ, for `catalog show`.

    Empty when the database predates the model_memory view (run `catalog db upgrade`).
    """
    from sqlalchemy import inspect

    if "model_memory" not in inspect(conn).get_view_names():
        return []
    rows = memory_rows(conn, model_id, ("none", "fp8", "awq"))
    r = lambda v, n: None if v is None else round(float(v), n)  # noqa: E731
    return [
        {"quantization": x["quantization"], "format": x["weight_format"], "weights_gb": r(x["weights_gb"], 2),
         "kv_gb_per_1k_tokens": r(x["kv_gb_per_1k_tokens"], 4), "repo": x["repo"],
         "not_estimated": x["not_estimated"]}
        for x in rows
    ]  # fmt: skip
