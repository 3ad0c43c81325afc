"""GSM8K, scored exactly as lm-evaluation-harness's ``gsm8k`` task (v3.0, lm-eval 0.4.x).

Prompt: ``Question: {question}\\nAnswer:``; five shots from the train split, each
``Question: ...\\nAnswer: {full train answer}`` (target delimiter " "), joined by the few-shot
delimiter "\\n\\n".  The shots are drawn the way lm-eval's default ``ContextSampler`` draws them
with its default fewshot seed: one ``random.Random(1234)`` shared by the whole run, advanced by
one ``rnd.sample(train, 5)`` per evaluated document in document order.  So document ``i`` (its
0-based row index, which is its doc_id) gets the i-th draw, as in ``lm_eval --limit N``.

Two metrics from two filters on the same completion, as lm-eval reports them:
``exact_match,strict-match`` (``#### (\\-?[0-9\\.\\,]+)``, first match) and
``exact_match,flexible-extract`` (``(-?[$0-9.,]{2,})|(-?[0-9]+)``, last match, the non-empty
group), ``[invalid]`` when nothing matches; then exact match after the regexes
``,`` ``\\$`` ``(?s).*#### `` ``\\.$`` are deleted from prediction and reference and both are
lower-cased.
"""

from __future__ import annotations

import random
import re
from typing import Any

from evaluator.tasks.base import Doc, LoadSpec, Prompt, SampleScore, Task, register

FALLBACK = "[invalid]"
STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
REGEXES_TO_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")
FEWSHOT_SEED = 1234  # lm_eval.defaults.DEFAULT_OTHER_SEED, the default --fewshot_random_seed


def regex_filter(pattern: re.Pattern[str], resp: str, group_select: int) -> str:
    """lm_eval.filters.extraction.RegexFilter on one response."""
    match: Any = pattern.findall(resp)
    if match:
        match = match[group_select]
        if isinstance(match, tuple):
            match = [m for m in match if m]
            match = match[0] if match else FALLBACK
        return match.strip()
    return FALLBACK


def _ignore(s: str) -> str:
    for r in REGEXES_TO_IGNORE:
        s = re.sub(r, "", s)
    # numpy's fixed-width unicode arrays (which lm-eval compares) drop trailing NULs
    return s.lower().rstrip("\x00")


def exact_match(prediction: str, reference: str) -> float:
    """lm_eval.api.metrics.exact_match_hf_evaluate with gsm8k.yaml's arguments
    (regexes_to_ignore as above, ignore_case true, ignore_punctuation false)."""
    return float(_ignore(prediction) == _ignore(reference))


def final_answer(answer: str) -> str:
    """The number after ``####`` in a GSM8K answer, without separators ("1,234" -> "1234")."""
    return _ignore(answer).strip()


@register
class GSM8K(Task):
    name = "gsm8k"
    load_spec = LoadSpec(hub_id="openai/gsm8k", config="main", split="test", fewshot_split="train")
    metrics = ("exact_match,strict-match", "exact_match,flexible-extract")
    num_fewshot = 5
    stop = ("Question:", "</s>", "<|im_end|>")
    harness = "lm-evaluation-harness gsm8k (v3.0): 5-shot, strict-match and flexible-extract"
    chat_by_default = False  # lm-eval runs gsm8k as a plain few-shot completion prompt
    version = 1

    def __init__(self) -> None:
        self.fewshot_rows: list[dict[str, Any]] = []
        self._draws: list[list[int]] = []
        self._rnd = random.Random(FEWSHOT_SEED)

    def set_fewshot(self, rows: list[dict[str, Any]]) -> None:
        self.fewshot_rows = list(rows)
        self._draws = []
        self._rnd = random.Random(FEWSHOT_SEED)

    def shot_indices(self, index: int) -> list[int]:
        """Indices into the few-shot rows of document ``index``'s shots (the index-th draw)."""
        n = len(self.fewshot_rows)
        if n < self.num_fewshot:
            raise ValueError(f"gsm8k needs {self.num_fewshot} few-shot rows from the train split, got {n}")
        while len(self._draws) <= index:
            # rnd.sample(docs, k) picks the same positions as rnd.sample(range(len(docs)), k)
            self._draws.append(self._rnd.sample(range(n), self.num_fewshot))
        return self._draws[index]

    @staticmethod
    def doc_to_text(row: dict[str, Any]) -> str:
        return f"Question: {row['question']}\nAnswer:"

    def prompt(self, doc: Doc) -> Prompt:
        try:
            index = int(doc.doc_id)
        except ValueError:
            index = 0
        shots = [self.fewshot_rows[i] for i in self.shot_indices(index)] if self.num_fewshot else []
        text = "".join(f"{self.doc_to_text(s)} {s['answer']}\n\n" for s in shots) + self.doc_to_text(doc.data)
        messages: list[dict[str, str]] = []
        for s in shots:
            messages.append({"role": "user", "content": self.doc_to_text(s)})
            messages.append({"role": "assistant", "content": s["answer"]})
        messages.append({"role": "user", "content": self.doc_to_text(doc.data)})
        return Prompt(text=text, messages=messages)

    def score(self, doc: Doc, completion: str) -> SampleScore:
        reference = doc.data["answer"]
        strict = regex_filter(STRICT, completion, 0)
        flexible = regex_filter(FLEXIBLE, completion, -1)
        scores = {
            "exact_match,strict-match": exact_match(strict, reference),
            "exact_match,flexible-extract": exact_match(flexible, reference),
        }
        return SampleScore(
            extracted=strict,
            reference=final_answer(reference),
            scores=scores,
            details={"strict-match": strict, "flexible-extract": flexible},
        )

    def fingerprint_parts(self) -> dict[str, Any]:
        return {**super().fingerprint_parts(), "fewshot_seed": FEWSHOT_SEED, "sampler": "lm-eval default"}
