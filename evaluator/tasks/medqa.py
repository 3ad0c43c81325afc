"""MedQA (USMLE, 4 options), letter answer, accuracy.

Fields of ``GBaker/MedQA-USMLE-4-options``: ``question``, ``options`` (a dict A-D), ``answer``
(the option text), ``answer_idx`` (the letter), ``meta_info``.  Prompt: lm-eval's
``medqa_4options`` layout (``Question: ...\nA. ...\n...\nAnswer:``) after the instruction line.
"""

from __future__ import annotations

from typing import Any

from evaluator.tasks.base import LoadSpec, register
from evaluator.tasks.multiple_choice import LetterTask


@register
class MedQA(LetterTask):
    name = "medqa"
    load_spec = LoadSpec(hub_id="GBaker/MedQA-USMLE-4-options", config=None, split="test")
    harness = "lm-evaluation-harness medqa_4options prompt layout, generative; accuracy on the letter"

    def options(self, row: dict[str, Any]) -> list[str]:
        opts = row["options"]
        if isinstance(opts, dict):
            return [str(opts[k]) for k in sorted(opts) if opts[k] is not None]
        return [str(o["value"]) for o in opts]  # bigbio-style list of {key, value}

    def question(self, row: dict[str, Any]) -> str:
        return "Question: " + str(row["question"]).strip()

    def gold(self, row: dict[str, Any]) -> str:
        return str(row["answer_idx"]).strip().upper()
