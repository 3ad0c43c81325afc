"""BigCodeBench (bigcode/bigcodebench, version splits such as ``v0.1.4``), ``complete`` and ``instruct``.

Two tasks, following the official harness (bigcode-project/bigcodebench):

- ``bigcodebench`` (complete): the prompt is ``complete_prompt`` (imports, signature, docstring);
  a base model continues it (no chat template by default), stopping at the harness's EOS list plus
  its direct-completion extras (``\\ndef ``, ``\\nclass ``, ``\\nimport ``, ``\\nfrom ``,
  ``\\nassert ``), and the solution is ``complete_prompt + completion``.  The chat messages wrap
  the prompt as the harness does for chat models ("Please provide a self-contained Python script
  ... in a markdown code block:" and the prompt in a fence).
- ``bigcodebench_instruct``: the natural-language ``instruct_prompt`` after the same instruction,
  for chat models; the answer's code block is the solution (``code_prompt`` is put in front when the
  answer is only a function body).  The harness pre-fills the assistant turn with
  "Below is a Python script ...\\n```python\\n"; the runner cannot pre-fill a chat turn, so the
  model writes its own fence and the code is taken out of it.  The plain-text prompt (a model without
  a chat template) ends with that pre-fill.

Program run in the sandbox: ``solution + "\\n" + test`` and then the ``TestCases`` suite through
``unittest`` (output of the tests discarded, as the harness's ``swallow_io``); the program raises
an AssertionError naming the failed tests unless every test passed, so a pass needs the whole suite
run and green (and the sandbox's completion marker after it).

A problem whose ``libs`` (a string holding a Python list, e.g. ``"['numpy', 'random']"``) names a
library the sandbox interpreter cannot import is not run: its outcome is
``skipped: missing library X`` and it is left out of pass@k and counted in the ``skipped`` metric.
Limits: 60 s wall clock and 8 GiB address space per program (the harness allows 240 s and 30 GiB,
and starts a process with multiprocessing; /dev/shm is closed in this sandbox, so the few tasks that
use multiprocessing locks fail here).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any, Optional

from evaluator.tasks.base import Doc, LoadSpec, Prompt, register
from evaluator.tasks.passk import PASS_METRICS, CodeTask, assemble

EOS = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(")
DIRECT_COMPLETION_EOS = ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ")
INSTRUCTION_PREFIX = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
RESPONSE_PREFIX = "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:"
# `libs` entries that are distribution names rather than import names
IMPORT_NAMES = {
    "scikit-learn": "sklearn", "beautifulsoup4": "bs4", "pillow": "PIL", "opencv-python": "cv2",
    "python-dateutil": "dateutil", "python-docx": "docx", "pycryptodome": "Crypto", "pyyaml": "yaml",
}  # fmt: skip

RUN_SUITE = '''

import unittest as _bcb_unittest, contextlib as _bcb_contextlib, os as _bcb_os
_bcb_result = _bcb_unittest.TestResult()
_bcb_suite = _bcb_unittest.TestLoader().loadTestsFromTestCase(TestCases)
with open(_bcb_os.devnull, "w") as _bcb_sink, _bcb_contextlib.redirect_stdout(_bcb_sink), \\
        _bcb_contextlib.redirect_stderr(_bcb_sink):
    _bcb_suite.run(_bcb_result)
_bcb_bad = [(t.id().rsplit(".", 1)[-1], (tb.strip().splitlines() or ["?"])[-1])
            for t, tb in _bcb_result.failures + _bcb_result.errors]
_bcb_bad += [(t.id().rsplit(".", 1)[-1], "unexpected success") for t in _bcb_result.unexpectedSuccesses]
if _bcb_bad:
    raise AssertionError("%d of %d tests failed: %s" % (len(_bcb_bad), _bcb_result.testsRun,
                         "; ".join("%s (%s)" % (n, m[:300]) for n, m in _bcb_bad[:5])))
if _bcb_result.testsRun == 0:
    raise AssertionError("no tests ran")
'''


def parse_libs(value: Any) -> list[str]:
    """The ``libs`` field as a list of import names (the hub stores it as the repr of a list)."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, (list, tuple)) else ast.literal_eval(str(value))
    out = []
    for item in items:
        name = str(item).strip()
        if name:
            out.append(IMPORT_NAMES.get(name.lower(), name))
    return list(dict.fromkeys(out))


class _BigCodeBench(CodeTask):
    load_spec = LoadSpec(hub_id="bigcode/bigcodebench", config=None, split="v0.1.4")
    id_field = "task_id"
    metrics = (*PASS_METRICS, "skipped")
    max_tokens = 1280  # the harness's default max_new_tokens
    default_timeout_s = 60.0
    default_memory_mb = 8192
    version = 1
    split_kind = "complete"

    def __init__(self) -> None:
        super().__init__()
        self._importable: dict[str, bool] = {}

    def skip_reasons(self, docs: Sequence[Doc]) -> list[Optional[str]]:
        from evaluator.sandbox import Limits, missing_libraries

        wanted = [parse_libs(d.data.get("libs")) for d in docs]
        unknown = [n for names in wanted for n in names if n not in self._importable]
        if unknown:
            probe = Limits(timeout_s=max(120.0, self.limits.timeout_s), memory_mb=self.limits.memory_mb)
            missing = set(missing_libraries(unknown, limits=probe))
            for n in dict.fromkeys(unknown):
                self._importable[n] = n not in missing
        reasons: list[Optional[str]] = []
        for names in wanted:
            absent = [n for n in names if not self._importable[n]]
            reasons.append(f"missing library {', '.join(absent)}" if absent else None)
        return reasons

    def build(self, doc: Doc, completion: str) -> tuple[str, str]:
        solution = self.solution(doc, completion)
        return solution, solution + "\n" + doc.data["test"] + RUN_SUITE

    def solution(self, doc: Doc, completion: str) -> str:
        raise NotImplementedError

    def reference_solution(self, doc: Doc) -> str:
        return doc.data["canonical_solution"]

    def fingerprint_parts(self) -> dict[str, Any]:
        return {**super().fingerprint_parts(), "split": self.split_kind}


@register
class BigCodeBenchComplete(_BigCodeBench):
    name = "bigcodebench"
    stop = EOS + DIRECT_COMPLETION_EOS
    chat_by_default = False
    harness = "bigcodebench (complete): direct completion of complete_prompt, harness EOS; unittest TestCases; unbiased pass@k"

    def prompt(self, doc: Doc) -> Prompt:
        text = doc.data["complete_prompt"]
        user = f"{INSTRUCTION_PREFIX}\n```\n{text.strip()}\n```\n"
        return Prompt(text=text, messages=[{"role": "user", "content": user}])

    def solution(self, doc: Doc, completion: str) -> str:
        return assemble(doc.data["complete_prompt"], doc.data["entry_point"], completion)[0]


@register
class BigCodeBenchInstruct(_BigCodeBench):
    name = "bigcodebench_instruct"
    stop = EOS
    chat_by_default = True
    split_kind = "instruct"
    harness = "bigcodebench (instruct): instruct_prompt with the harness's instruction, code block extracted; unittest TestCases; unbiased pass@k"

    def prompt(self, doc: Doc) -> Prompt:
        user = f"{INSTRUCTION_PREFIX}\n{doc.data['instruct_prompt'].strip()}\n"
        return Prompt(text=f"{user}{RESPONSE_PREFIX}\n```python\n", messages=[{"role": "user", "content": user}])

    def solution(self, doc: Doc, completion: str) -> str:
        return assemble(doc.data["code_prompt"], doc.data["entry_point"], completion)[0]
