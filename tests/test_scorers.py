"""The benchmark tasks' prompts and scorers, on the local documents in tests/data (upstream schema).

Gold completions score 1.0 on every metric, wrong ones 0, messy ones as a careful reader would;
gsm8k's prompts, extractions and scores are compared with lm-evaluation-harness 0.4.13's own output
on the same rows (tests/data/gsm8k/lm_eval_reference.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluator.tasks import TASK_MODULES, get_task, load_all
from evaluator.tasks.base import Doc, Prompt, Task
from evaluator.tasks.extract import extract_label, extract_letter
from evaluator.tasks.gsm8k import FALLBACK
from evaluator.tasks.math import extract_boxed, is_equiv, strip_string

DATA = Path(__file__).parent / "data"

# dataset id -> (local file, split)
FILES = {
    "gsm8k": "gsm8k/test.jsonl",
    "math": "math/test.jsonl",
    "hendrycks_math": "hendrycks_math/test.jsonl",
    "pubmedqa": "pubmedqa/train.jsonl",
    "medqa": "medqa/test.jsonl",
    "bioasq": "bioasq/test.json",
    "mediqa": "mediqa/test.jsonl",
    "mmlu": "mmlu/test.jsonl",
    "arc_challenge": "arc_challenge/test.jsonl",
}
LETTERS = "ABCDE"


def read_rows(rel: str, json_field: str | None = None) -> list[dict[str, Any]]:
    path = DATA / rel
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return data[json_field] if json_field else data
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def task_and_docs(name: str) -> tuple[Task, list[Doc]]:
    task = get_task(name)
    rows = task.prepare(read_rows(FILES[name], task.load_spec.json_field))
    if task.num_fewshot:
        task.set_fewshot(read_rows(f"{name}/{task.load_spec.fewshot_split}.jsonl"))
    return task, [Doc(task.doc_id(r, i), r) for i, r in enumerate(rows)]


def gold_completion(name: str, d: dict[str, Any]) -> str:
    if name == "gsm8k":
        return " " + d["answer"]  # the reference solution itself, ending "#### 72"
    if name == "math":
        return f"We compute carefully.\nThe final answer is $\\boxed{{{d['answer']}}}$."
    if name == "hendrycks_math":
        return d["solution"]
    if name == "pubmedqa":
        return f" {d['final_decision']}"
    if name == "bioasq":
        return f" {d['exact_answer'].capitalize()}."
    if name == "mediqa":
        return f" {d['value']}"
    if name == "medqa":
        return f" {d['answer_idx']}. {d['answer']}"
    if name == "mmlu":
        return f" {LETTERS[d['answer']]}"
    if name == "arc_challenge":
        return f" The answer is ({LETTERS[d['choices']['label'].index(d['answerKey'])]})."
    raise KeyError(name)


def wrong_completion(name: str, d: dict[str, Any]) -> str:
    if name == "gsm8k":
        return "She makes 999999 dollars.\n#### 999999"
    if name in ("math", "hendrycks_math"):
        return "The answer is $\\boxed{-12345}$."
    if name == "pubmedqa":
        return " no" if d["final_decision"] != "no" else " yes"
    if name == "bioasq":
        return " no" if d["exact_answer"] == "yes" else " yes"
    if name == "mediqa":
        return " false" if d["value"] == "true" else " true"
    if name == "medqa":
        return " A" if d["answer_idx"] != "A" else " B"
    if name == "mmlu":
        return " A" if d["answer"] != 0 else " B"
    if name == "arc_challenge":
        i = d["choices"]["label"].index(d["answerKey"])
        return " Answer: A" if i != 0 else " Answer: B"
    raise KeyError(name)


ALL = sorted(FILES)


def test_every_task_is_registered_and_listed() -> None:
    tasks = load_all()
    assert set(ALL) <= set(tasks)
    for module in ("gsm8k", "math", "pubmedqa", "medqa", "bioasq", "mediqa", "multiple_choice"):
        assert module in TASK_MODULES
    for name in ALL:
        t = tasks[name]
        assert t.name == name and t.metrics and t.harness and t.load_spec.split


@pytest.mark.parametrize("name", ALL)
def test_local_documents_load_and_prompt_as_text_and_chat(name: str) -> None:
    task, docs = task_and_docs(name)
    assert 4 <= len(docs) <= 6
    assert len({d.doc_id for d in docs}) == len(docs)
    for doc in docs:
        p = task.prompt(doc)
        assert isinstance(p, Prompt) and p.text.strip()
        assert p.messages and p.messages[-1]["role"] == "user"
        assert all(m["role"] in ("user", "assistant", "system") and m["content"] for m in p.messages)


@pytest.mark.parametrize("name", ALL)
def test_gold_answers_score_one_on_every_metric(name: str) -> None:
    task, docs = task_and_docs(name)
    for doc in docs:
        s = task.score(doc, gold_completion(name, doc.data))
        assert set(s.scores) == set(task.metrics), name
        assert all(v == 1.0 for v in s.scores.values()), (name, doc.doc_id, s)
        assert s.extracted is not None and s.error is None
    agg = task.aggregate([task.score(d, gold_completion(name, d.data)) for d in docs])
    for m in task.metrics:
        assert agg[m].value == 1.0 and agg[m].n == len(docs) and agg[m].stderr == 0.0


@pytest.mark.parametrize("name", ALL)
def test_wrong_and_empty_answers_score_zero(name: str) -> None:
    task, docs = task_and_docs(name)
    for doc in docs:
        for completion in (wrong_completion(name, doc.data), "", "   \n"):
            s = task.score(doc, completion)
            assert all(v == 0.0 for v in s.scores.values()), (name, doc.doc_id, completion, s)


def test_aggregate_has_stderr_and_n() -> None:
    task, docs = task_and_docs("mmlu")
    scores = [task.score(d, gold_completion("mmlu", d.data) if i % 2 else "nothing") for i, d in enumerate(docs)]
    agg = task.aggregate(scores)["accuracy"]
    assert agg.n == 5 and agg.value == pytest.approx(2 / 5)
    assert agg.stderr == pytest.approx((0.3 / 5) ** 0.5)  # sample variance 0.3


# --- gsm8k against lm-evaluation-harness ----------------------------------------------------------

LM_EVAL = json.loads((DATA / "gsm8k" / "lm_eval_reference.json").read_text())


def test_gsm8k_prompts_match_lm_eval_byte_for_byte() -> None:
    task, docs = task_and_docs("gsm8k")
    for doc_id, expected in LM_EVAL["prompts"].items():
        assert task.prompt(docs[int(doc_id)]).text == expected
    # the format itself: five "Question: ...\nAnswer: <full train answer>" shots joined by blank lines
    text = task.prompt(docs[1]).text
    train = read_rows("gsm8k/train.jsonl")
    blocks = text.split("\n\nQuestion: ")
    assert len(blocks) == 6
    assert text.endswith(f"Question: {docs[1].data['question']}\nAnswer:")
    shots = [train[i] for i in task.shot_indices(1)]
    assert text.startswith(f"Question: {shots[0]['question']}\nAnswer: {shots[0]['answer']}\n\nQuestion: ")
    # the draws advance one per document, in document order (doc 0 and doc 1 differ here)
    assert task.shot_indices(0) != task.shot_indices(1)


def test_gsm8k_chat_messages_are_multiturn_shots() -> None:
    task, docs = task_and_docs("gsm8k")
    msgs = task.prompt(docs[0]).messages
    assert msgs is not None and [m["role"] for m in msgs] == ["user", "assistant"] * 5 + ["user"]
    assert msgs[0]["content"].startswith("Question: ") and msgs[0]["content"].endswith("\nAnswer:")
    assert "####" in msgs[1]["content"]
    assert msgs[-1]["content"] == f"Question: {docs[0].data['question']}\nAnswer:"
    assert task.stop == ("Question:", "</s>", "<|im_end|>") and task.num_fewshot == 5


def test_gsm8k_extractions_and_scores_match_lm_eval() -> None:
    task, docs = task_and_docs("gsm8k")
    for i, resp in enumerate(LM_EVAL["responses"]):
        s = task.score(docs[i % len(docs)], resp)
        assert s.details["strict-match"] == LM_EVAL["filtered"]["strict-match"][i], resp
        assert s.details["flexible-extract"] == LM_EVAL["filtered"]["flexible-extract"][i], resp
        assert s.scores["exact_match,strict-match"] == LM_EVAL["exact_match"]["strict-match"][i], resp
        assert s.scores["exact_match,flexible-extract"] == LM_EVAL["exact_match"]["flexible-extract"][i], resp


@pytest.mark.parametrize(
    "completion,gold,strict,flexible,strict_score,flexible_score",
    [
        ("The answer is $1,234.", "x\n#### 1234", FALLBACK, "$1,234.", 0.0, 1.0),
        ("-5", "x\n#### -5", FALLBACK, "-5", 0.0, 1.0),
        ("#### 72", "x\n#### 72", "72", "72", 1.0, 1.0),
        ("So 3 + 4 = 7.\n#### 7\n\nNext I", "x\n#### 7", "7", "7", 1.0, 1.0),
        ("#### 6,250", "x\n#### 6,250", "6,250", "6,250", 1.0, 1.0),
        ("#### 18 then 20", "x\n#### 18", "18", "20", 1.0, 0.0),
        ("no number at all", "x\n#### 5", FALLBACK, FALLBACK, 0.0, 0.0),
    ],
)
def test_gsm8k_messy_completions(completion, gold, strict, flexible, strict_score, flexible_score) -> None:
    task = get_task("gsm8k")
    s = task.score(Doc("0", {"question": "q", "answer": gold}), completion)
    assert s.details == {"strict-match": strict, "flexible-extract": flexible}
    assert s.extracted == strict
    assert s.scores == {"exact_match,strict-match": strict_score, "exact_match,flexible-extract": flexible_score}


# --- math ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion,expected",
    [
        ("so $x=\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("first \\boxed{1}, finally \\boxed{2}", "2"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("The answer is $\\boxed 5$.", "5"),
        ("\\fbox{7}", "7"),
        ("\\boxed{\\text{(C)}} and nothing after", "\\text{(C)}"),
        ("no box here: 1/2", None),
        ("\\boxed{unclosed", None),
    ],
)
def test_extract_last_boxed(completion: str, expected: str | None) -> None:
    assert extract_boxed(completion) == expected


@pytest.mark.parametrize(
    "a,b,equal",
    [
        ("\\frac{1}{2}", "0.5", True),  # strip_string maps exactly "0.5" to \frac{1}{2}
        ("\\dfrac{1}{2}", "\\frac12", True),
        ("1/2", "\\frac{1}{2}", True),
        ("10\\%", "10", True),
        ("90^\\circ", "90", True),
        ("x = 5", "5", True),
        ("\\left(1,2\\right)", "(1, 2)", True),
        ("5\\text{ cm}", "5", True),
        ("\\frac{2}{4}", "\\frac{1}{2}", False),
        ("0.25", "\\frac{1}{4}", False),
    ],
)
def test_hendrycks_is_equiv(a: str, b: str, equal: bool) -> None:
    assert is_equiv(a, b) is equal


def test_strip_string_raises_like_the_original_and_is_equiv_falls_back() -> None:
    with pytest.raises(ValueError):
        strip_string("a/b")
    assert is_equiv("a/b", "a/b") and not is_equiv("a/b", "b/a")


@pytest.mark.parametrize(
    "completion,exact,verify",
    [
        ("\\boxed{\\frac{1}{2}}", 1.0, 1.0),
        ("\\boxed{0.5}", 1.0, 1.0),
        ("\\boxed{\\frac{2}{4}}", 0.0, 1.0),  # equal value, not the same normalised string
        ("\\boxed{0.50}", 0.0, 1.0),
        ("\\boxed{\\frac{1}{3}}", 0.0, 0.0),
        ("The answer is 1/2.", 0.0, 0.0),  # no \boxed: nothing extracted
    ],
)
def test_math_messy_completions(completion: str, exact: float, verify: float) -> None:
    task = get_task("math")
    s = task.score(Doc("test/x.json", {"problem": "p", "answer": "\\frac{1}{2}"}), completion)
    assert s.scores == {"exact_match": exact, "math_verify": verify}


def test_hendrycks_math_gold_is_the_last_box_of_the_solution() -> None:
    task, docs = task_and_docs("hendrycks_math")
    math500 = {r["problem"]: r["answer"] for r in read_rows("math/test.jsonl")}
    for doc in docs:
        assert task.score(doc, "").reference == math500[doc.data["problem"]]
    assert task.load_spec.configs == (
        "algebra", "counting_and_probability", "geometry", "intermediate_algebra",
        "number_theory", "prealgebra", "precalculus",
    )  # fmt: skip


# --- the answer extractor --------------------------------------------------------------------------

OPTS = ["Hypertension", "Pulmonary hypertension", "Diabetes mellitus", "Asthma"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Answer: (C)", "C"),
        ("The answer is C.", "C"),
        ("**B**", "B"),
        ("c)", "C"),
        ("b", "B"),
        ("I think the correct option is (D) because the others are wrong.", "D"),
        ("the answer is d", "D"),
        ("Answer: b) Pulmonary hypertension", "B"),
        ("B. Pulmonary hypertension\nExplanation: A is wrong because ...", "B"),
        ("C\n\nThe patient has diabetes.", "C"),
        ("Option A is tempting, but the answer is B.", "B"),  # an explicit answer beats an earlier letter
        ("Answer: C. C is right because A and B are not.", "C"),  # repeated letters: the stated one
        ("D D D", "D"),
        ("The correct answer: (A) Hypertension", "A"),
        ("Option D is correct.", "D"),
        ("A is correct.", "A"),
        ("Hepatitis A is the correct diagnosis", None),  # "A" is part of a name here
        ("Final answer: option b", "B"),
        ("[C]", "C"),
        ("Asthma", "D"),  # option text only
        ("The patient most likely has pulmonary hypertension.", "B"),  # longest matching option text
        ("Diabetes mellitus (C)", "C"),
        ("A 45-year-old man with hypertension", "A"),  # "A" is the article; the option text decides
        ("I would go with (B) here.", "B"),
        ("It must be D", "D"),
        ("Either B or C, hard to say", None),
        ("I am not sure.", None),
        ("the answer is a bit unclear", None),
        ("", None),
    ],
)
def test_extract_letter(text: str, expected: str | None) -> None:
    assert extract_letter(text, "ABCD", OPTS) == expected


def test_extract_letter_respects_the_valid_letters() -> None:
    assert extract_letter("Answer: E", "ABCD") is None
    assert extract_letter("Answer: E", "ABCDE") == "E"
    assert extract_letter("The answer is B", "ABCD", None) == "B"


YNM = ("yes", "no", "maybe")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Answer: yes, because the trial showed a benefit.", "yes"),
        ("No.", "no"),
        ("maybe", "maybe"),
        ("  Yes", "yes"),
        ("**No**, the data do not support it.", "no"),
        ("The answer is maybe; the evidence is mixed.", "maybe"),
        ("Based on the abstract, the final answer: no", "no"),
        ("It appears so. Yes.", "yes"),  # the only label word in the text
        ("Yes or no? Hard to say.", "yes"),  # starts with a label
        ("Well, yes and no.", None),  # two labels, neither stated nor first
        ("Unclear from the abstract.", None),
        ("The answer is not obvious, nobody knows", None),
        ("", None),
    ],
)
def test_extract_label(text: str, expected: str | None) -> None:
    assert extract_label(text, YNM) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("true", "true"),
        ("False.", "false"),
        ("Answer: TRUE", "true"),
        ("Yes, question A entails question B.", "true"),
        ("Not entailed.", "false"),
        ("No", "false"),
    ],
)
def test_mediqa_labels_and_synonyms(text: str, expected: str) -> None:
    task = get_task("mediqa")
    s = task.score(Doc("1", {"pid": "1", "value": expected, "chq": "a?", "faq": "b?"}), text)
    assert s.extracted == expected and s.scores == {"accuracy": 1.0}


def test_bioasq_keeps_only_yesno_questions() -> None:
    task = get_task("bioasq")
    raw = read_rows("bioasq/test.json", "questions")
    docs = task.prepare(raw)
    assert len(raw) > len(docs) and {d["type"] for d in docs} == {"yesno"}
    assert task.load_spec.json_field == "questions" and task.load_spec.hub_id is None
    assert task.doc_id(docs[0], 0) == docs[0]["id"]


def test_arc_numeric_labels_map_to_letters() -> None:
    task, docs = task_and_docs("arc_challenge")
    numeric = next(d for d in docs if d.data["choices"]["label"][0] == "1")
    p = task.prompt(numeric).text
    assert "\nA. " in p and "\nD. " in p and "\n1. " not in p
    assert task.score(numeric, "D").scores["accuracy"] == 1.0
    five = next(d for d in docs if len(d.data["choices"]["label"]) == 5)
    assert "\nE. " in task.prompt(five).text


def test_pubmedqa_prompt_has_the_abstract_and_question() -> None:
    task, docs = task_and_docs("pubmedqa")
    d = docs[0]
    text = task.prompt(d).text
    assert f"Abstract: {d.data['context']['contexts'][0]}" in text
    assert text.endswith(f"\nQuestion: {d.data['question']}\nAnswer:")
    assert d.doc_id == str(d.data["pubid"])


def test_medqa_prompt_lists_four_options() -> None:
    task, docs = task_and_docs("medqa")
    text = task.prompt(docs[0]).text
    for letter in "ABCD":
        assert f"\n{letter}. {docs[0].data['options'][letter]}" in text
    assert text.endswith("\nAnswer:")
    # the option text alone is enough for a careful reader
    assert task.score(docs[0], f"The best choice here is {docs[0].data['answer']}.").scores["accuracy"] == 1.0
