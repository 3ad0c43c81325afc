"""The small interface every backend implements: prompts in, completions out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    n: int = 1  # completions per prompt (pass@k sampling)
    seed: Optional[int] = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass
class Completion:
    text: str
    tokens: int  # generated tokens, up to and including the stop
    prompt_tokens: int
    finish_reason: str  # "stop" (EOS or a stop sequence) or "length"
    extra: dict[str, Any] = field(default_factory=dict)


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop sequence (which is not kept), as lm-evaluation-harness does."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class ChatPrompt(str):
    """A prompt that a backend sends as chat ``messages`` rather than as text (optional capability).

    A backend that talks to a server which applies the chat template itself (the OpenAI-compatible
    backend: ``/v1/chat/completions``) returns one from ``render_chat``; the runner passes it to
    ``generate`` like any prompt, and records its text (the messages as JSON) as the sample's
    prompt.  Backends that render the template locally return plain ``str`` and never see one.
    """

    messages: list[dict[str, str]]

    def __new__(cls, messages: list[dict[str, str]]) -> "ChatPrompt":
        import json

        obj = super().__new__(cls, json.dumps(messages, ensure_ascii=False))
        obj.messages = [dict(m) for m in messages]
        return obj


def apply_chat_template(tokenizer: Any, messages: list[dict[str, str]]) -> Optional[str]:
    """The prompt text for ``messages`` with a Hugging Face tokenizer's chat template, or None
    when the tokenizer has none (local backends share this)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


class Backend(Protocol):
    name: str

    def render_chat(self, messages: list[dict[str, str]]) -> Optional[str]:
        """The prompt text for chat ``messages`` with the model's template, or None without one
        (or a ``ChatPrompt`` when the backend sends the messages themselves)."""

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        """``params.n`` completions for every prompt, in prompt order."""

    def engine_args(self) -> dict[str, Any]:
        """The settings the model was loaded with (recorded on the run)."""

    def peak_memory_gb(self) -> Optional[float]:
        """Peak accelerator memory so far, when the backend can tell."""

    def close(self) -> None: ...
