"""MBPP (google-research-datasets/mbpp, config ``full``, test split = task ids 11-510), 3-shot as
lm-evaluation-harness's ``mbpp`` task runs it.

Prompt (lm-eval ``mbpp.yaml``, metadata version 1.0)::

    You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:

    {test_list[0]}
    {test_list[1]}
    {test_list[2]}
    [BEGIN]
    {code}
    [DONE]

for each of the three shots, the tasks 2, 3 and 4 of the ``prompt`` split in that order (lm-eval's
``first_n`` sampler over its fixed ``list_fewshot_samples``), joined by the few-shot delimiter
``\\n\\n``, then the same header for the document ending in ``[BEGIN]\\n``; generation stops at
``[DONE]``.  The shots' reference code goes into the prompt byte for byte, CRLF line endings
included, as lm-eval does.  The completion's code is taken out of a Markdown fence when it has
one (lm-eval's ``extract_code_blocks``), a stray ``[BEGIN]``/``[DONE]`` is dropped, and line
endings are normalised to LF (MBPP's reference code and some models use CRLF).

Program run in the sandbox::

    code + "\\n" + test_setup_code + "\\n" + "\\n".join(test_list)

``test_setup_code`` (non-empty for tasks 367 and 927 only) goes after the code because it uses
names the code defines (367 builds trees of the solution's ``Node`` class).  lm-eval drops it
altogether, so it fails those two tasks whatever the solution; this scorer passes their reference
code.  ``challenge_test_list`` is not run (neither does lm-eval).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaluator.tasks.base import Doc, LoadSpec, Prompt, register
from evaluator.tasks.passk import CodeTask, extract_code, normalise_newlines

FEWSHOT_IDS = (2, 3, 4)


def doc_to_text(row: dict[str, Any]) -> str:
    tests = list(row["test_list"]) + ["", "", ""]
    return (
        f"You are an expert Python programmer, and here is your task: {row['text']} "
        f"Your code should pass these tests:\n\n{tests[0]}\n{tests[1]}\n{tests[2]}\n[BEGIN]\n"
    )


def shot_target(row: dict[str, Any]) -> str:
    return f"{row['code']}\n[DONE]"


def clean_completion(completion: str) -> str:
    code, _ = extract_code(completion)
    code = normalise_newlines(code)
    head = code.lstrip()
    if head.startswith("[BEGIN]"):
        code = head[len("[BEGIN]") :]
    cut = code.find("[DONE]")
    if cut >= 0:
        code = code[:cut]
    return code


@register
class MBPP(CodeTask):
    name = "mbpp"
    load_spec = LoadSpec(hub_id="google-research-datasets/mbpp", config="full", split="test", fewshot_split="prompt")
    id_field = "task_id"
    num_fewshot = 3
    stop = ("[DONE]",)
    chat_by_default = False
    harness = "lm-evaluation-harness mbpp (v1.0): 3-shot (tasks 2, 3, 4), [DONE] stop; all test_list asserts; unbiased pass@k"
    version = 1

    def __init__(self) -> None:
        super().__init__()
        self.shots: list[dict[str, Any]] = []

    def set_fewshot(self, rows: Sequence[dict[str, Any]]) -> None:
        by_id = {int(r["task_id"]): r for r in rows}
        missing = [i for i in FEWSHOT_IDS if i not in by_id]
        if missing:
            raise ValueError(f"mbpp's few-shot examples are tasks {FEWSHOT_IDS} of the prompt split; missing {missing}")
        self.fewshot_rows = list(rows)
        self.shots = [by_id[i] for i in FEWSHOT_IDS]

    def prompt(self, doc: Doc) -> Prompt:
        if len(self.shots) != self.num_fewshot:
            raise ValueError("mbpp needs its few-shot examples (tasks 2, 3, 4 of the prompt split) first")
        text = "".join(doc_to_text(s) + shot_target(s) + "\n\n" for s in self.shots) + doc_to_text(doc.data)
        messages: list[dict[str, str]] = []
        for s in self.shots:
            messages.append({"role": "user", "content": doc_to_text(s)})
            messages.append({"role": "assistant", "content": shot_target(s)})
        messages.append({"role": "user", "content": doc_to_text(doc.data)})
        return Prompt(text=text, messages=messages)

    def build(self, doc: Doc, completion: str) -> tuple[str, str]:
        d = doc.data
        code = clean_completion(completion)
        setup = normalise_newlines(d.get("test_setup_code") or "")
        tests = "\n".join(normalise_newlines(t) for t in d["test_list"])
        return code, code + "\n" + setup + "\n" + tests + "\n"

    def reference_solution(self, doc: Doc) -> str:
        return normalise_newlines(doc.data["code"])

    def fingerprint_parts(self) -> dict[str, Any]:
        return {**super().fingerprint_parts(), "fewshot_ids": FEWSHOT_IDS}
