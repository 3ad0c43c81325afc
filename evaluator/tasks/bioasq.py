"""BioASQ Task B yes/no questions, accuracy.

Only from a local file in the official BioASQ JSON format (``{"questions": [{"id", "body",
"type", "exact_answer", "snippets": [{"text", ...}], ...}]}``); the questions of type ``yesno``
are kept.  The prompt gives the snippets as context; the label is pulled out with
``extract.extract_label``.
"""

from __future__ import annotations

from typing import Any

from evaluator.tasks.base import Doc, LoadSpec, Prompt, SampleScore, Task, register
from evaluator.tasks.extract import score_label

LABELS = ("yes", "no")
INSTRUCTION = "Answer the biomedical question with yes or no, using the context."


def _answer(row: dict[str, Any]) -> str:
    a = row.get("exact_answer")
    while isinstance(a, list) and a:  # some releases wrap it: ["yes"]
        a = a[0]
    return str(a or "").strip().lower()


@register
class BioASQ(Task):
    name = "bioasq"
    load_spec = LoadSpec(hub_id=None, config=None, split="test", json_field="questions")
    metrics = ("accuracy",)
    id_field = "id"
    harness = "BioASQ Task B yes/no (official JSON), generative; accuracy"
    version = 1

    def prepare(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if r.get("type") == "yesno"]

    def prompt(self, doc: Doc) -> Prompt:
        snippets = [s.get("text", "") for s in (doc.data.get("snippets") or []) if isinstance(s, dict)]
        context = "\n".join(s.strip() for s in snippets if s and s.strip())
        text = f"{INSTRUCTION}\n\nContext: {context}\nQuestion: {doc.data['body']}\nAnswer:"
        return Prompt(text=text, messages=[{"role": "user", "content": text}])

    def score(self, doc: Doc, completion: str) -> SampleScore:
        gold = _answer(doc.data)
        return score_label(completion, gold, LABELS)
