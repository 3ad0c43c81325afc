"""Letter-answer multiple choice: MMLU and ARC-Challenge (and the base of MedQA), accuracy.

Zero-shot generative.  The prompt is lm-eval's generative MMLU layout
(``{question}\\nA. ...\\nB. ...\\n...\\nAnswer:``) after one instruction line; the letter is pulled
out of the completion with ``extract.extract_letter`` (which also accepts the text of an option).
"""

from __future__ import annotations

from typing import Any

from evaluator.tasks.base import Doc, LoadSpec, Prompt, SampleScore, Task, register
from evaluator.tasks.extract import extract_letter

LETTERS = "ABCDEFGHIJ"


class LetterTask(Task):
    """Subclasses say where the question, the options and the gold letter are."""

    metrics = ("accuracy",)
    num_fewshot = 0
    version = 1
    instruction = "Answer the following multiple choice question with the letter of the correct option."

    def options(self, row: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def question(self, row: dict[str, Any]) -> str:
        return str(row["question"]).strip()

    def gold(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def prompt(self, doc: Doc) -> Prompt:
        opts = self.options(doc.data)
        lines = "".join(f"\n{LETTERS[i]}. {o}" for i, o in enumerate(opts))
        text = f"{self.instruction}\n\n{self.question(doc.data)}{lines}\nAnswer:"
        return Prompt(text=text, messages=[{"role": "user", "content": text}])

    def score(self, doc: Doc, completion: str) -> SampleScore:
        opts = self.options(doc.data)
        gold = self.gold(doc.data)
        pred = extract_letter(completion, LETTERS[: len(opts)], opts)
        return SampleScore(extracted=pred, reference=gold, scores={"accuracy": float(pred == gold)})

    def fingerprint_parts(self) -> dict[str, Any]:
        return {**super().fingerprint_parts(), "instruction": self.instruction}


@register
class MMLU(LetterTask):
    name = "mmlu"
    load_spec = LoadSpec(hub_id="cais/mmlu", config="all", split="test")
    harness = "lm-evaluation-harness mmlu generative prompt layout, zero-shot; accuracy on the letter"

    def options(self, row: dict[str, Any]) -> list[str]:
        return [str(c) for c in row["choices"]]

    def gold(self, row: dict[str, Any]) -> str:
        return LETTERS[int(row["answer"])]


@register
class ARCChallenge(LetterTask):
    name = "arc_challenge"
    load_spec = LoadSpec(hub_id="allenai/ai2_arc", config="ARC-Challenge", split="test")
    id_field = "id"
    harness = "ARC-Challenge as lettered generative multiple choice (like lm-eval arc_challenge_chat); accuracy"

    def options(self, row: dict[str, Any]) -> list[str]:
        return [str(t) for t in row["choices"]["text"]]

    def gold(self, row: dict[str, Any]) -> str:
        # Labels are A-E or 1-5; options are always shown as A, B, C, ... in the given order.
        labels = [str(x) for x in row["choices"]["label"]]
        return LETTERS[labels.index(str(row["answerKey"]).strip())]
