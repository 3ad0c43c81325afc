"""The contract every benchmark implements: load documents, build prompts, score completions.

A benchmark is one file in evaluator/tasks/ defining a ``Task`` subclass and registering it
with ``@register``. The runner does everything else (batching, generation, storage, metrics),
so a task never touches a model or the database, and never imports torch.

Documents are plain dicts in the dataset's upstream schema (the hub's, or a local file in the
same schema). ``doc_id`` is the dataset's own id (``task_id``, ``pubid``, ``unique_id``) or the
0-based row index in its split where it has none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional


@dataclass(frozen=True)
class Doc:
    doc_id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Prompt:
    """What to send to the model: plain text, and the same as chat messages.

    The runner uses ``messages`` with the model's chat template when the model has one and
    the run asks for chat; otherwise ``text``.  Few-shot examples are earlier user/assistant
    turns in ``messages`` and the usual concatenation in ``text``.
    """

    text: str
    messages: Optional[list[dict[str, str]]] = None


@dataclass
class SampleScore:
    """The scored outcome of one document."""

    extracted: Optional[str]  # the answer pulled out of the completion (None if none found)
    reference: str  # the gold answer, as text
    scores: dict[str, float]  # metric name -> this document's value (0/1 for accuracy-like)
    details: dict[str, Any] = field(default_factory=dict)  # anything worth keeping (outcomes, ...)
    error: Optional[str] = None


@dataclass(frozen=True)
class MetricValue:
    value: float
    stderr: Optional[float]
    n: int


def mean_and_stderr(values: Sequence[float]) -> MetricValue:
    """Mean with the standard error of the mean (sample std / sqrt(n)), as lm-evaluation-harness reports."""
    n = len(values)
    if n == 0:
        return MetricValue(float("nan"), None, 0)
    mean = sum(values) / n
    if n < 2:
        return MetricValue(mean, None, n)
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return MetricValue(mean, math.sqrt(var / n), n)


@dataclass(frozen=True)
class LoadSpec:
    """Where the documents come from on the hub (local files use the same field names)."""

    hub_id: Optional[str]
    config: Optional[str]
    split: str
    fewshot_split: Optional[str] = None
    # Several hub configs concatenated in this order (e.g. the seven MATH subjects); overrides config.
    configs: tuple[str, ...] = ()
    # For JSON files whose records sit under a top-level key (BioASQ: "questions").
    json_field: Optional[str] = None


class Task:
    """Base class; subclasses set the class attributes and implement ``prompt`` and ``score``."""

    name: ClassVar[str]  # the catalog's dataset id, e.g. "gsm8k"
    load_spec: ClassVar[LoadSpec]
    metrics: ClassVar[tuple[str, ...]]  # metric names; the first is the primary one
    num_fewshot: ClassVar[int] = 0
    stop: ClassVar[Optional[tuple[str, ...]]] = None  # None: the category's stop sequences
    max_tokens: ClassVar[Optional[int]] = None  # None: the category's max_tokens
    id_field: ClassVar[Optional[str]] = None  # field holding the dataset's own id, if any
    needs_execution: ClassVar[bool] = False  # scoring runs generated code (in the sandbox)
    harness: ClassVar[str] = ""  # which reference harness's conventions this follows
    # Use the model's chat template unless the run says otherwise. Completion-style few-shot
    # prompts (gsm8k as lm-evaluation-harness runs it) set this to False.
    chat_by_default: ClassVar[bool] = True

    def doc_id(self, row: dict[str, Any], index: int) -> str:
        if self.id_field and row.get(self.id_field) is not None:
            return str(row[self.id_field])
        return str(index)

    def prepare(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Turn the split's rows into documents (filter, flatten). Default: as they are."""
        return rows

    def set_fewshot(self, rows: list[dict[str, Any]]) -> None:
        """Receive the rows of ``load_spec.fewshot_split`` (only called when num_fewshot > 0)."""
        self.fewshot_rows = rows

    def prompt(self, doc: Doc) -> Prompt:
        raise NotImplementedError

    def score(self, doc: Doc, completion: str) -> SampleScore:
        raise NotImplementedError

    def score_many(self, items: Sequence[tuple[Doc, Sequence[str]]]) -> list[SampleScore]:
        """Score every document's completions (one per document unless sampling n > 1).

        Tasks that execute code override this to run programs in parallel in the sandbox.
        """
        return [self.score(doc, completions[0]) for doc, completions in items]

    def aggregate(self, scores: Sequence[SampleScore]) -> dict[str, MetricValue]:
        """Metric name -> value over documents. Default: the mean of each per-document score."""
        return {m: mean_and_stderr([s.scores[m] for s in scores if m in s.scores]) for m in self.metrics}

    def run_settings(self) -> dict[str, Any]:
        """Run-level facts that change or explain results but are not part of the prompt (the code
        sandbox's limits and isolation, the host CPU), for the run's ``settings``. Default: none."""
        return {}

    def fingerprint_parts(self) -> dict[str, Any]:
        """Everything about prompting and scoring that changes results (goes into the run's config hash)."""
        return {
            "task": self.name,
            "class": type(self).__qualname__,
            "num_fewshot": self.num_fewshot,
            "stop": self.stop,
            "max_tokens": self.max_tokens,
            "metrics": self.metrics,
            "version": getattr(self, "version", 1),
        }


TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available under its ``name``."""
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} registered twice")
    TASKS[cls.name] = cls
    return cls
