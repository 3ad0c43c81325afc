"""SQLModel tables: the only place a catalog table is defined.

Alembic migrations (``migrations/versions``) create exactly these tables; a test runs
Alembic's autogenerate comparison against this metadata so the two cannot drift.

Importing this module pulls in pydantic and the SQLAlchemy ORM, so the read-only CLI
paths (``catalog query``, ``catalog stats`` ...) never import it: they query the views.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, CheckConstraint, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from catalog.vocab import (
    CATEGORY_STATUSES,
    DATASET_ROLES,
    LICENSE_FAMILIES,
    MODEL_KINDS,
    QUANTIZATIONS,
    RUN_STATUSES,
)


def _json_column(nullable: bool = True) -> Any:
    """A JSON column; behaves the same on SQLite (TEXT) and PostgreSQL (json)."""
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class License(SQLModel, table=True):
    __tablename__ = "license"
    __table_args__ = (CheckConstraint(_in("family", LICENSE_FAMILIES), name="ck_license_family"),)

    id: str = Field(primary_key=True, description="Hugging Face hub license id, e.g. apache-2.0")
    name: str
    family: str
    commercial_use: bool
    url: Optional[str] = None


class SizeBucket(SQLModel, table=True):
    """Half-open parameter ranges [min_params_b, max_params_b); NULL max means no upper bound."""

    __tablename__ = "size_bucket"

    id: str = Field(primary_key=True)
    label: str
    min_params_b: float
    max_params_b: Optional[float] = None
    sort_order: int


class Preset(SQLModel, table=True):
    __tablename__ = "preset"
    __table_args__ = (
        CheckConstraint(
            "gpu_memory_utilization > 0 AND gpu_memory_utilization <= 1", name="ck_preset_gpu_util"
        ),
    )

    id: str = Field(primary_key=True)
    gpu_memory_utilization: float
    max_num_seqs: int
    batch_size: int
    swap_space_gb: float = 4.0
    cpu_offload_gb: float = 0.0
    description: str = ""


class Category(SQLModel, table=True):
    __tablename__ = "category"
    __table_args__ = (CheckConstraint(_in("status", CATEGORY_STATUSES), name="ck_category_status"),)

    id: str = Field(primary_key=True)
    name: str
    description: str = ""
    status: str
    phase: int
    max_tokens: int
    temperature: float
    top_p: float
    stop: Optional[list[str]] = _json_column()
    sample_limit: int
    timeout_s: float


class Model(SQLModel, table=True):
    __tablename__ = "model"
    __table_args__ = (
        CheckConstraint(_in("kind", MODEL_KINDS), name="ck_model_kind"),
        CheckConstraint(_in("quantization", QUANTIZATIONS), name="ck_model_quantization"),
        CheckConstraint("params_b > 0", name="ck_model_params_positive"),
        CheckConstraint("max_context >= native_context", name="ck_model_context_order"),
        # One hub repo may be catalogued once per deployment (e.g. bf16 and AWQ of BioMistral).
        UniqueConstraint("hub_id", "quantization", name="uq_model_deployment"),
        # Faceted queries filter and sort on these; see docs/performance.md.
        Index("ix_model_params_b", "params_b"),
        Index("ix_model_license_context", "license_id", "max_context"),
        Index("ix_model_max_context_id", "max_context", "id"),
        Index("ix_model_family", "family"),
    )

    id: str = Field(primary_key=True, description="catalog key, e.g. qwen3_14b")
    name: str
    hub_id: str
    revision: Optional[str] = None
    family: str
    architecture: str
    kind: str
    params_b: float
    active_params_b: Optional[float] = None
    weights_gb: Optional[float] = None
    native_context: int
    max_context: int
    rope_scaling: Optional[str] = None
    license_id: str = Field(foreign_key="license.id")
    license_name: Optional[str] = None
    quantization: str = "none"
    quantized_hub_id: Optional[str] = None
    gated: bool = False
    release_date: Optional[dt.date] = None
    trust_remote_code: bool = False
    dtype: Optional[str] = None
    chat_template: bool = False
    num_layers: Optional[int] = None
    hidden_size: Optional[int] = None
    num_attention_heads: Optional[int] = None
    num_kv_heads: Optional[int] = None
    head_dim: Optional[int] = None
    vocab_size: Optional[int] = None
    subcategory: Optional[str] = None
    primary_use_cases: Optional[list[str]] = _json_column()
    preset_id: str = Field(foreign_key="preset.id")
    priority: str = "medium"
    agent_optimized: bool = False
    agent_temperature: Optional[float] = None
    max_function_calls_per_turn: Optional[int] = None
    evaluation_batch_size: int = 8
    max_model_len: Optional[int] = None
    gpu_memory_utilization: Optional[float] = None
    sources: Optional[list[str]] = _json_column()
    notes: Optional[str] = None


class CategoryModel(SQLModel, table=True):
    __tablename__ = "category_model"
    __table_args__ = (
        # Every model has at most one primary category (the loader checks "exactly one").
        Index(
            "ux_category_model_one_primary",
            "model_id",
            unique=True,
            sqlite_where=text("is_primary"),
            postgresql_where=text("is_primary"),
        ),
    )

    category_id: str = Field(foreign_key="category.id", primary_key=True)
    model_id: str = Field(foreign_key="model.id", primary_key=True, index=True)
    is_primary: bool = False


class Dataset(SQLModel, table=True):
    __tablename__ = "dataset"

    id: str = Field(primary_key=True)
    name: str
    hub_id: Optional[str] = Field(default=None, description="NULL when the data needs registration")
    config: Optional[str] = None
    split: str
    task_type: str
    primary_metric: str
    license: Optional[str] = None
    size: Optional[int] = None
    needs_data_file: bool = Field(
        default=False, description="cannot be downloaded without registration; needs --data-file"
    )
    description: str = ""
    source: Optional[str] = None


class CategoryDataset(SQLModel, table=True):
    __tablename__ = "category_dataset"
    __table_args__ = (CheckConstraint(_in("role", DATASET_ROLES), name="ck_category_dataset_role"),)

    category_id: str = Field(foreign_key="category.id", primary_key=True)
    dataset_id: str = Field(foreign_key="dataset.id", primary_key=True)
    role: str


class PublishedResult(SQLModel, table=True):
    """A figure the model's authors published (paper or card), shown beside our own runs."""

    __tablename__ = "published_result"
    __table_args__ = (UniqueConstraint("model_id", "dataset_id", "metric", name="uq_published_result"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: str = Field(foreign_key="model.id")
    dataset_id: str = Field(foreign_key="dataset.id")
    metric: str
    value: float
    source: str
    note: Optional[str] = None


class Gpu(SQLModel, table=True):
    """A GPU type for the memory planner (``catalog fit``): memory as marketed and as reported."""

    __tablename__ = "gpu"
    __table_args__ = (CheckConstraint("memory_gb > 0 AND memory_mib > 0", name="ck_gpu_memory_positive"),)

    id: str = Field(primary_key=True, description="e.g. h100-80gb")
    name: str
    architecture: str
    memory_gb: float = Field(description="memory as marketed (the vendor's 'GB', in effect GiB)")
    memory_mib: int = Field(description="total memory nvidia-smi reports, MiB")
    bf16: bool
    fp8: bool
    source: str
    memory_source: Optional[str] = None
    notes: Optional[str] = None


class EvalRun(SQLModel, table=True):
    """One evaluation of one model on one dataset, with everything needed to reproduce it."""

    __tablename__ = "eval_run"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="ck_eval_run_status"),
        Index("ix_eval_run_model_dataset", "model_id", "dataset_id", "status"),
        Index("ix_eval_run_fingerprint", "config_fingerprint"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    # NULL when `evaluator score` scores completions of a model that is not in the catalog.
    model_id: Optional[str] = Field(default=None, foreign_key="model.id")
    dataset_id: str = Field(foreign_key="dataset.id")
    backend: str = Field(description="hf, vllm, openai or external (scored completions made elsewhere)")
    preset: Optional[str] = None
    status: str
    n_samples: int = Field(description="documents this run evaluates")
    samples_per_doc: int = 1
    seed: Optional[int] = None
    generation_params: Optional[dict[str, Any]] = _json_column()
    engine_args: Optional[dict[str, Any]] = _json_column()
    settings: Optional[dict[str, Any]] = _json_column()  # task, data source, sandbox notes, host CPU
    config_fingerprint: str
    package_versions: Optional[dict[str, Any]] = _json_column()
    host: Optional[str] = None
    started_at: Optional[dt.datetime] = None
    finished_at: Optional[dt.datetime] = None
    tokens_per_s: Optional[float] = None
    samples_per_s: Optional[float] = None
    peak_memory_gb: Optional[float] = None
    error: Optional[str] = None
    # The run queue (evaluator enqueue / evaluator worker) and live-process detection (0006).
    worker_id: Optional[str] = Field(default=None, description="who runs it: NAME@HOST:PID")
    heartbeat_at: Optional[dt.datetime] = None  # refreshed while the run is in progress
    claimed_at: Optional[dt.datetime] = None
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"}, description="times claimed")


class SampleResult(SQLModel, table=True):
    """One document of a run: what was asked, what came back, and how it scored."""

    __tablename__ = "sample_result"
    __table_args__ = (UniqueConstraint("run_id", "doc_id", name="uq_sample_result_run_doc"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="eval_run.id")
    doc_id: str
    prompt: Optional[str] = None
    completion: Optional[str] = None
    extracted: Optional[str] = None
    reference: Optional[str] = None
    score: Optional[float] = Field(default=None, description="the primary metric for this document")
    scores: Optional[dict[str, Any]] = _json_column()  # every metric for this document
    tokens: Optional[int] = None  # generated tokens
    prompt_tokens: Optional[int] = None
    finish_reason: Optional[str] = None
    latency_s: Optional[float] = None
    error: Optional[str] = None
    details: Optional[dict[str, Any]] = _json_column()


class Metric(SQLModel, table=True):
    __tablename__ = "metric"

    run_id: int = Field(foreign_key="eval_run.id", primary_key=True)
    name: str = Field(primary_key=True)
    value: float
    stderr: Optional[float] = None
    n: int


metadata = SQLModel.metadata
