"""The code benchmarks (humaneval, mbpp, bigcodebench): programs, outcomes, pass@k, `evaluator score`
and an end-to-end sampled run, on real problems (tests/data) run through the real sandbox."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from catalog import db as dbmod
from evaluator.data import DataSource, load_docs
from evaluator.external import check_score_request, score_file
from evaluator.tasks import get_task
from evaluator.tasks.base import Doc
from evaluator.tasks.mbpp import doc_to_text
from evaluator.tasks.passk import aggregate_pass_at_k, assemble, extract_code, pass_at_k

DATA = Path(__file__).resolve().parent / "data"


def rows(dataset: str, split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / dataset / f"{split}.jsonl").read_text().splitlines() if line.strip()]


def docs(dataset: str, split: str = "test") -> list[Doc]:
    return [Doc(str(r["task_id"]), r) for r in rows(dataset, split)]


# ---------------------------------------------------------------------------------------------
# pass@k
# ---------------------------------------------------------------------------------------------
def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


@pytest.mark.parametrize("n,c,k,expected", [
    (5, 2, 1, 0.4), (10, 3, 10, 1.0), (10, 0, 1, 0.0), (10, 0, 10, 0.0), (1, 1, 1, 1.0), (1, 0, 1, 0.0),
    (10, 3, 1, 0.3), (4, 1, 2, 0.5), (10, 10, 10, 1.0),
])  # fmt: skip
def test_pass_at_k_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_stable_for_large_n() -> None:
    for c in (0, 1, 7, 50, 120, 199, 200):
        for k in (1, 10, 100):
            assert pass_at_k(200, c, k) == pytest.approx(float(exact_pass_at_k(200, c, k)), abs=1e-12), (c, k)
    # the naive ratio of binomials overflows a float here; the product form does not
    assert math.comb(2000, 1000) > 1e300
    assert pass_at_k(2000, 3, 1000) == pytest.approx(float(exact_pass_at_k(2000, 3, 1000)), abs=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(5, 2, 6)


def test_pass_at_k_over_problems() -> None:
    got = aggregate_pass_at_k([(10, 3), (10, 0), (10, 10)])
    assert set(got) == {"pass@1", "pass@10"}  # k <= n only
    assert got["pass@1"].value == pytest.approx((0.3 + 0 + 1) / 3) and got["pass@1"].n == 3
    assert got["pass@10"].value == pytest.approx(2 / 3)
    mean = (0.3 + 0 + 1) / 3
    se = math.sqrt(sum((v - mean) ** 2 for v in (0.3, 0.0, 1.0)) / 2 / 3)
    assert got["pass@1"].stderr == pytest.approx(se)
    assert set(aggregate_pass_at_k([(200, 5), (100, 1)])) == {"pass@1", "pass@10", "pass@100"}
    assert aggregate_pass_at_k([]) == {}


# ---------------------------------------------------------------------------------------------
# HumanEval
# ---------------------------------------------------------------------------------------------
def test_humaneval_prompt_and_settings() -> None:
    task = get_task("humaneval")
    d = docs("humaneval")[0]
    p = task.prompt(d)
    assert p.text == d.data["prompt"] and task.chat_by_default is False
    assert task.stop == ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
    assert p.messages and "```python\n" + d.data["prompt"].strip() in p.messages[-1]["content"]
    assert task.metrics[0] == "pass@1" and task.needs_execution


def test_humaneval_canonical_solutions_pass_through_score_many() -> None:
    task = get_task("humaneval")
    ds = docs("humaneval")
    scores = task.score_many([(d, [d.data["canonical_solution"]]) for d in ds])
    assert [s.details["outcome"] for s in scores] == ["passed"] * len(ds), [s.details for s in scores]
    assert all(s.scores == {"pass@1": 1.0} and s.details["n"] == 1 and s.details["c"] == 1 for s in scores)
    assert scores[0].details["limits"]["timeout_s"] == task.limits.timeout_s
    agg = task.aggregate(scores)
    assert {k: (m.value, m.n) for k, m in agg.items()} == {"pass@1": (1.0, len(ds))}


def test_humaneval_wrong_solutions_get_the_right_outcome() -> None:
    task = get_task("humaneval").with_limits(timeout_s=2.0)
    doc = docs("humaneval")[0]  # HumanEval/0 has_close_elements
    completions = [
        "    return False\n",
        "    return undefined_name\n",
        "    while True:\n        pass\n",
        "    x = bytearray(10 ** 10)\n    return x\n",
        "    import sys\n    sys.exit(0)\n",
        doc.data["canonical_solution"],
    ]
    [score] = task.score_many([(doc, completions)])
    out = score.details["outcomes"]
    assert [o["outcome"] for o in out] == ["failed", "error", "timeout", "killed", "failed", "passed"], out
    assert out[0]["detail"].startswith("AssertionError at line") and "assert candidate(" in out[0]["detail"]
    assert out[1]["detail"].startswith("NameError: name 'undefined_name' is not defined")
    assert "timeout" in out[2]["detail"] and "memory" in out[3]["detail"]
    assert "exited before the tests finished" in out[4]["detail"]
    assert score.details["n"] == 6 and score.details["c"] == 1
    assert score.scores == {"pass@1": pytest.approx(1 / 6)}
    assert score.details["outcome"] == "failed" and score.details["detail"] == out[0]["detail"]


def test_humaneval_chat_completions_with_code_fences() -> None:
    task = get_task("humaneval")
    by_id = {d.doc_id: d for d in docs("humaneval")}
    zero = by_id["HumanEval/32"]  # find_zero, with a helper `poly` and `import math` in the prompt
    full = zero.data["prompt"].split("def find_zero")[1]
    fenced_full = ("Sure! Here is the completed function:\n\n```python\ndef find_zero" + full +
                   zero.data["canonical_solution"] + "```\n\nIt uses bisection.")  # fmt: skip
    fenced_body = "```python\n" + zero.data["canonical_solution"] + "```"
    closed_continuation = zero.data["canonical_solution"] + "```\n"
    unfenced_prose = "Here you go:\n\ndef find_zero" + full + zero.data["canonical_solution"]
    [score] = task.score_many([(zero, [fenced_full, fenced_body, closed_continuation, unfenced_prose])])
    assert [o["outcome"] for o in score.details["outcomes"]] == ["passed"] * 4, score.details["outcomes"]
    # the whole function replaces the prompt's stub: defined once, the helper and import kept
    solution, rewrote = assemble(zero.data["prompt"], "find_zero", fenced_full)
    assert rewrote and solution.count("def find_zero") == 1 and solution.count("def poly") == 1
    assert solution.startswith("import math")
    code, fenced = extract_code("text\n```py\nx = 1\n```\nmore\n```python\ny = 2\n```")
    assert fenced and code == "x = 1\n"
    assert extract_code("x = 1\n") == ("x = 1\n", False)
    assert extract_code("```python\ndef f():\n    return 1")[0] == "def f():\n    return 1"  # cut by max_tokens


# ---------------------------------------------------------------------------------------------
# MBPP
# ---------------------------------------------------------------------------------------------
def mbpp_task():  # type: ignore[no-untyped-def]
    task = get_task("mbpp")
    task.set_fewshot(rows("mbpp", "prompt"))
    return task


def test_mbpp_prompt_is_lm_eval_three_shot() -> None:
    task = mbpp_task()
    assert task.load_spec.fewshot_split == "prompt" and task.num_fewshot == 3 and task.stop == ("[DONE]",)
    shots = {r["task_id"]: r for r in rows("mbpp", "prompt")}
    doc = docs("mbpp")[0]
    expected = "".join(
        "You are an expert Python programmer, and here is your task: " + shots[i]["text"]
        + " Your code should pass these tests:\n\n" + "\n".join(shots[i]["test_list"][:3]) + "\n[BEGIN]\n"
        + shots[i]["code"] + "\n[DONE]\n\n"
        for i in (2, 3, 4)
    ) + ("You are an expert Python programmer, and here is your task: " + doc.data["text"]
         + " Your code should pass these tests:\n\n" + "\n".join(doc.data["test_list"][:3]) + "\n[BEGIN]\n")  # fmt: skip
    p = task.prompt(doc)
    assert p.text == expected
    assert "\r\n" in p.text  # the shots' reference code goes in byte for byte, as lm-eval does
    assert [m["role"] for m in p.messages or []] == ["user", "assistant"] * 3 + ["user"]
    assert p.messages[-1]["content"] == doc_to_text(doc.data)
    with pytest.raises(ValueError, match="missing"):
        get_task("mbpp").set_fewshot(rows("mbpp", "prompt")[4:])


def test_mbpp_reference_code_passes_including_crlf_and_setup_code() -> None:
    task = mbpp_task()
    ds = docs("mbpp")
    assert all("\r\n" in d.data["code"] for d in ds)  # upstream CRLF kept in the test data
    assert any(d.data["test_setup_code"] for d in ds)  # task 367 builds trees of the solution's Node class
    scores = task.score_many([(d, [d.data["code"]]) for d in ds])
    assert [s.details["outcome"] for s in scores] == ["passed"] * len(ds), [s.details for s in scores]
    assert "\r" not in scores[0].extracted and "\r" not in scores[0].reference


def test_mbpp_wrong_and_wrapped_completions() -> None:
    task = mbpp_task()
    doc = docs("mbpp")[0]  # 11: remove_Occ
    wrong = "def remove_Occ(s,ch):\n    return s[1:-1]\n"
    syntax = "def remove_Occ(s,ch)\n    return s\n"
    fenced = "```python\n" + doc.data["code"] + "\n```\n[DONE]"
    with_done = doc.data["code"] + "\n[DONE]\nextra text"
    [score] = task.score_many([(doc, [wrong, syntax, fenced, with_done])])
    out = score.details["outcomes"]
    assert [o["outcome"] for o in out] == ["failed", "error", "passed", "passed"], out
    assert out[0]["detail"].startswith("AssertionError at line") and 'assert remove_Occ("hello","l") == "heo"' in out[0]["detail"]
    assert out[1]["detail"].startswith("SyntaxError")


# ---------------------------------------------------------------------------------------------
# BigCodeBench
# ---------------------------------------------------------------------------------------------
def test_bigcodebench_canonical_solutions_pass_and_missing_library_is_skipped() -> None:
    for name in ("bigcodebench", "bigcodebench_instruct"):
        task = get_task(name)
        ds = docs("bigcodebench", "v0.1.4")
        completions = [d.data["canonical_solution"] if name == "bigcodebench" else
                       "```python\n" + d.data["code_prompt"] + d.data["canonical_solution"] + "```" for d in ds]  # fmt: skip
        scores = task.score_many([(d, [c]) for d, c in zip(ds, completions)])
        outcomes = {d.doc_id: s.details["outcome"] for d, s in zip(ds, scores)}
        assert outcomes == {"BigCodeBench/0": "passed", "BigCodeBench/1000": "passed", "BigCodeBench/1001": "passed",
                            "BigCodeBench/1002": "skipped: missing library tensorflow"}, name  # fmt: skip
        skipped = scores[-1]
        assert skipped.scores == {} and skipped.details["skipped"] == "missing library tensorflow"
        assert skipped.details["outcomes"] == [{"outcome": "skipped", "detail": "missing library tensorflow"}]
        agg = task.aggregate(scores)
        assert {k: (m.value, m.n) for k, m in agg.items()} == {"pass@1": (1.0, 3), "skipped": (1.0, 4)}


def test_bigcodebench_prompts() -> None:
    d = docs("bigcodebench", "v0.1.4")[0]
    complete, instruct = get_task("bigcodebench"), get_task("bigcodebench_instruct")
    assert complete.prompt(d).text == d.data["complete_prompt"] and not complete.chat_by_default
    assert "\ndef " in (complete.stop or ()) and instruct.chat_by_default and "\ndef " not in (instruct.stop or ())
    user = (instruct.prompt(d).messages or [])[0]["content"]
    assert user.startswith("Please provide a self-contained Python script") and d.data["instruct_prompt"] in user


def test_bigcodebench_failures_name_the_tests() -> None:
    task = get_task("bigcodebench")
    doc = {d.doc_id: d for d in docs("bigcodebench", "v0.1.4")}["BigCodeBench/1000"]
    wrong = "    return Counter(text.split()).most_common(n)\n"
    exits = "    import sys\n    sys.exit(0)\n"
    crash = "    raise RuntimeError('boom')\n"
    [score] = task.score_many([(doc, [wrong, exits, crash])])
    out = score.details["outcomes"]
    assert [o["outcome"] for o in out] == ["failed", "failed", "failed"], out
    assert "tests failed" in out[0]["detail"] and "test_example" in out[0]["detail"]
    assert "4 of 4 tests failed" in out[1]["detail"] and "SystemExit" in out[1]["detail"]
    assert "RuntimeError: boom" in out[2]["detail"]
    assert score.details["c"] == 0 and score.scores == {"pass@1": 0.0}


def test_run_settings_record_the_sandbox_and_cpu() -> None:
    settings = get_task("humaneval").run_settings()
    assert settings["sandbox"]["limits"]["timeout_s"] == 10.0 and settings["host_cpu"] and settings["cpu_count"]
    assert "network" in settings["sandbox"]
    assert get_task("gsm8k").run_settings() == {}


# ---------------------------------------------------------------------------------------------
# `evaluator score` and a sampled run, recorded in a real (SQLite) catalog
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def catalog_url(seeded_tiny_sqlite: str) -> str:
    return seeded_tiny_sqlite


def _solution_field(dataset: str) -> str:
    return {"humaneval": "canonical_solution", "mbpp": "code", "bigcodebench": "canonical_solution"}[dataset]


@pytest.mark.parametrize("dataset,split,expected", [
    ("humaneval", "test", {"pass@1": (1.0, 5)}),
    ("mbpp", "test", {"pass@1": (1.0, 4)}),
    ("bigcodebench", "v0.1.4", {"pass@1": (1.0, 3), "skipped": (1.0, 4)}),
])  # fmt: skip
def test_evaluator_score_reference_solutions(catalog_url: str, tmp_path: Path, dataset: str, split: str,
                                             expected: dict[str, tuple[float, int]]) -> None:  # fmt: skip
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps({"doc_id": r["task_id"], "completion": r[_solution_field(dataset)]}) + "\n"
                            for r in rows(dataset, split)))  # fmt: skip
    source = DataSource(data_dir=DATA / dataset)
    engine = dbmod.make_engine(catalog_url)
    with engine.connect() as conn:
        task = check_score_request(conn, dataset, None, source)
    run_id, metrics = score_file(engine, task, path, source)
    assert {k: (m.value, m.n) for k, m in metrics.items()} == expected
    with engine.connect() as conn:
        stored = {r.name: (r.value, r.n) for r in conn.execute(text("SELECT * FROM metric WHERE run_id = :r"), {"r": run_id})}
        samples = conn.execute(text("SELECT doc_id, score, details FROM sample_result WHERE run_id = :r"),
                               {"r": run_id}).fetchall()  # fmt: skip
    assert stored == expected
    for s in samples:
        details = json.loads(s.details) if isinstance(s.details, str) else s.details
        if details.get("skipped"):
            assert s.score is None and details["outcome"] == "skipped: missing library tensorflow"
        else:
            assert s.score == 1.0 and details["outcome"] == "passed" and details["n"] == 1 and details["c"] == 1


def test_sampled_humaneval_run_records_n_completions(catalog_url: str, tiny_model_dir: Path) -> None:
    from evaluator import runner

    from .tiny_model import CountingBackend

    source = DataSource(data_dir=DATA / "humaneval")
    engine = dbmod.make_engine(catalog_url)
    with engine.connect() as conn:
        plan = runner.plan_run(conn, "tiny_llama", "humaneval", runner.RunOptions(
            model_path=str(tiny_model_dir), samples=3, num_samples=3, temperature=0.8, max_tokens=16, fresh=True,
        ), source)  # fmt: skip
    assert plan.params.n == 3 and plan.params.stop == ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
    backend = CountingBackend(tiny_model_dir)
    result = runner.execute(engine, plan, lambda p: backend, progress=None)
    with engine.connect() as conn:
        run = conn.execute(text("SELECT status, samples_per_doc FROM eval_run WHERE id = :r"), {"r": result.run_id}).one()
        metrics = {r.name: r for r in conn.execute(text("SELECT * FROM metric WHERE run_id = :r"), {"r": result.run_id})}
        samples = conn.execute(text("SELECT doc_id, prompt, score, scores, details FROM sample_result WHERE run_id = :r"),
                               {"r": result.run_id}).fetchall()  # fmt: skip
    assert run.status == "completed" and run.samples_per_doc == 3
    assert set(metrics) == {"pass@1"} and metrics["pass@1"].n == 3 and 0.0 <= metrics["pass@1"].value <= 1.0
    prompts = {d.doc_id: d.data["prompt"] for d in load_docs(plan.task, source, 3)}
    assert sorted(s.doc_id for s in samples) == sorted(prompts)
    for s in samples:
        details = json.loads(s.details) if isinstance(s.details, str) else s.details
        assert details["n"] == 3 and len(details["completions"]) == 3 and len(details["outcomes"]) == 3
        assert all(o["outcome"] in ("passed", "failed", "error", "timeout", "killed") for o in details["outcomes"])
        assert 0 <= details["c"] <= 3 and s.prompt == prompts[s.doc_id]  # completion-style, no chat template
        scores = json.loads(s.scores) if isinstance(s.scores, str) else s.scores
        assert set(scores) == {"pass@1"} and s.score == scores["pass@1"]


