"""PubMedQA (PQA-L): yes/no/maybe over a PubMed abstract, accuracy.

Prompt in lm-eval's ``pubmedqa`` layout (``Abstract: {contexts joined by newlines}\\nQuestion:
{question}\\nAnswer:``) with an instruction line, since we generate instead of comparing
log-likelihoods; the label is pulled out with ``extract.extract_label``.
"""

from __future__ import annotations

from typing import Any

from evaluator.tasks.base import Doc, LoadSpec, Prompt, SampleScore, Task, register
from evaluator.tasks.extract import score_label

LABELS = ("yes", "no", "maybe")
INSTRUCTION = "Answer the question about the abstract with yes, no or maybe."


def _contexts(row: dict[str, Any]) -> list[str]:
    ctx = row.get("context") or {}
    return list(ctx.get("contexts") or []) if isinstance(ctx, dict) else list(ctx)


@register
class PubMedQA(Task):
    name = "pubmedqa"
    load_spec = LoadSpec(hub_id="qiaojin/PubMedQA", config="pqa_labeled", split="train")
    metrics = ("accuracy",)
    id_field = "pubid"
    harness = "lm-evaluation-harness pubmedqa prompt layout, generative; accuracy on yes/no/maybe"
    version = 1

    def prompt(self, doc: Doc) -> Prompt:
        abstract = "\n".join(_contexts(doc.data))
        text = f"{INSTRUCTION}\n\nAbstract: {abstract}\nQuestion: {doc.data['question']}\nAnswer:"
        return Prompt(text=text, messages=[{"role": "user", "content": text}])

    def score(self, doc: Doc, completion: str) -> SampleScore:
        gold = str(doc.data["final_decision"]).strip().lower()
        return score_label(completion, gold, LABELS)
