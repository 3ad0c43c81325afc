"""MATH-500 (``math``) and the full Hendrycks MATH test set (``hendrycks_math``).

Zero-shot; the prompt asks for the final answer in ``\\boxed{}`` (``PROMPT`` below).  The answer is
the content of the LAST ``\\boxed{...}`` / ``\\boxed ...`` / ``\\fbox{...}`` of the completion
(braces matched, so nested braces work).  Two metrics:

- ``exact_match``: the Hendrycks MATH ``is_equiv`` -- both strings normalised with ``strip_string``
  (copied from hendrycks/math ``math_equivalence.py``, the same code as lm-eval's
  ``hendrycks_math``/``minerva_math`` utils) and compared; when normalisation raises (as the
  original does on e.g. ``a/b`` with non-integers) the raw strings are compared.
- ``math_verify``: ``math_verify.verify(parse(gold), parse(answer))`` with both wrapped as
  ``\\boxed{...}`` (the gold first: verify is not symmetric).

No ``\\boxed`` in the completion scores 0 on both.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from evaluator.tasks.base import Doc, LoadSpec, Prompt, SampleScore, Task, register

PROMPT = (
    "Solve the following math problem. Explain your reasoning step by step, and put your final answer "
    "within \\boxed{{}}.\n\nProblem: {problem}\n\nSolution:"
)

# --- answer extraction ------------------------------------------------------------------------


def last_boxed_only_string(string: str) -> Optional[str]:
    """The last ``\\boxed{...}``, ``\\boxed ...`` or ``\\fbox{...}`` of ``string`` (with its command).

    Like the Hendrycks/lm-eval function of the same name, but the LAST command of any of the
    three forms wins (the original prefers any ``\\boxed `` over a later ``\\boxed{``), and a
    ``\\boxed `` answer ends at ``$`` or the end of the line.
    """
    idx = max(string.rfind("\\boxed"), string.rfind("\\fbox"))
    if idx < 0:
        return None
    cmd = "\\boxed" if string.startswith("\\boxed", idx) else "\\fbox"
    rest = string[idx + len(cmd):]
    if rest.startswith(" "):
        body = rest[1:].split("$")[0].split("\n")[0].strip()
        return f"{cmd} {body}" if body else None
    i = idx
    depth = 0
    right = None
    while i < len(string):
        if string[i] == "{":
            depth += 1
        elif string[i] == "}":
            depth -= 1
            if depth == 0:
                right = i
                break
        i += 1
    if right is None:
        return None
    return string[idx:right + 1]


def remove_boxed(s: Optional[str]) -> Optional[str]:
    if s is None:
        return None
    for left in ("\\boxed ", "\\fbox "):
        if s.startswith(left):
            return s[len(left):]
    for left in ("\\boxed{", "\\fbox{"):
        if s.startswith(left) and s.endswith("}"):
            return s[len(left):-1]
    return None


def extract_boxed(text: str) -> Optional[str]:
    """The content of the last boxed answer, or None."""
    return remove_boxed(last_boxed_only_string(text or ""))


# --- Hendrycks normalisation (hendrycks/math modeling/math_equivalence.py, verbatim semantics) ---


def _fix_fracs(string: str) -> str:
    substrs = string.split("\\frac")
    new_str = substrs[0]
    if len(substrs) > 1:
        substrs = substrs[1:]
        for substr in substrs:
            new_str += "\\frac"
            if substr[0] == "{":
                new_str += substr
            else:
                try:
                    assert len(substr) >= 2
                except AssertionError:
                    return string
                a = substr[0]
                b = substr[1]
                if b != "{":
                    if len(substr) > 2:
                        post_substr = substr[2:]
                        new_str += "{" + a + "}{" + b + "}" + post_substr
                    else:
                        new_str += "{" + a + "}{" + b + "}"
                else:
                    if len(substr) > 2:
                        post_substr = substr[2:]
                        new_str += "{" + a + "}" + b + post_substr
                    else:
                        new_str += "{" + a + "}" + b
    return new_str


def _fix_a_slash_b(string: str) -> str:
    if len(string.split("/")) != 2:
        return string
    a = string.split("/")[0]
    b = string.split("/")[1]
    try:
        a_int = int(a)  # ValueError escapes, as in the original (is_equiv catches it)
        b_int = int(b)
        assert string == "{}/{}".format(a_int, b_int)
        return "\\frac{" + str(a_int) + "}{" + str(b_int) + "}"
    except AssertionError:
        return string


def _remove_right_units(string: str) -> str:
    # "\\text{ " only ever occurs (at least in the val set) when describing units
    if "\\text{ " in string:
        splits = string.split("\\text{ ")
        assert len(splits) == 2
        return splits[0]
    return string


def _fix_sqrt(string: str) -> str:
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split[0] != "{":
            a = split[0]
            new_substr = "\\sqrt{" + a + "}" + split[1:]
        else:
            new_substr = "\\sqrt" + split
        new_string += new_substr
    return new_string


def strip_string(string: str) -> str:
    """Hendrycks MATH answer normalisation. May raise (like the original); see ``is_equiv``."""
    string = string.replace("\n", "")
    string = string.replace("\\!", "")
    string = string.replace("\\\\", "\\")
    string = string.replace("tfrac", "frac")
    string = string.replace("dfrac", "frac")
    string = string.replace("\\left", "")
    string = string.replace("\\right", "")
    string = string.replace("^{\\circ}", "")
    string = string.replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "")
    # (the original repeats the line above as "\%" written without the escape: the same string)
    string = string.replace(" .", " 0.")
    string = string.replace("{.", "{0.")
    if len(string) == 0:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2:
        if len(string.split("=")[0]) <= 2:
            string = string.split("=")[1]
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    string = _fix_a_slash_b(string)
    return string


def is_equiv(str1: Optional[str], str2: Optional[str]) -> bool:
    """Hendrycks ``is_equiv``: equal after ``strip_string``; raw equality if that raises."""
    if str1 is None and str2 is None:
        return True
    if str1 is None or str2 is None:
        return False
    try:
        return strip_string(str1) == strip_string(str2)
    except Exception:
        return str1 == str2


def math_verify_equal(gold: str, answer: Optional[str]) -> bool:
    """Equivalence by the ``math-verify`` package (imported here, so it is only needed to score)."""
    if answer is None:
        return False
    from math_verify import parse, verify

    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    t = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        g = parse("\\boxed{" + gold + "}", parsing_timeout=t)
        p = parse("\\boxed{" + answer + "}", parsing_timeout=t)
        return bool(g and p and verify(g, p, timeout_seconds=t))
    except Exception:
        return False


class _MathTask(Task):
    metrics = ("exact_match", "math_verify")
    num_fewshot = 0
    harness = "Hendrycks MATH is_equiv/strip_string (as lm-eval hendrycks_math) + math-verify; last \\boxed{} answer"
    version = 1

    def gold(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def prompt(self, doc: Doc) -> Prompt:
        text = PROMPT.format(problem=doc.data["problem"])
        return Prompt(text=text, messages=[{"role": "user", "content": text}])

    def score(self, doc: Doc, completion: str) -> SampleScore:
        gold = self.gold(doc.data)
        answer = extract_boxed(completion)
        scores = {
            "exact_match": float(answer is not None and is_equiv(answer, gold)),
            "math_verify": float(math_verify_equal(gold, answer)),
        }
        return SampleScore(extracted=answer, reference=gold, scores=scores)

    def fingerprint_parts(self) -> dict[str, Any]:
        return {**super().fingerprint_parts(), "prompt": PROMPT}


@register
class Math500(_MathTask):
    name = "math"
    load_spec = LoadSpec(hub_id="HuggingFaceH4/MATH-500", config=None, split="test")
    id_field = "unique_id"

    def gold(self, row: dict[str, Any]) -> str:
        return row["answer"]


HENDRYCKS_CONFIGS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


@register
class HendrycksMath(_MathTask):
    name = "hendrycks_math"
    load_spec = LoadSpec(hub_id="EleutherAI/hendrycks_math", config=None, split="test", configs=HENDRYCKS_CONFIGS)

    def gold(self, row: dict[str, Any]) -> str:
        return extract_boxed(row["solution"]) or ""
