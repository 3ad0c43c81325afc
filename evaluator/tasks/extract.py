"""Pull a letter (A-E) or a label (yes/no/maybe, true/false) out of a free-form completion.

Shared by the multiple-choice and classification tasks (mmlu, arc_challenge, medqa, pubmedqa,
bioasq, mediqa).  The rules are deterministic and go in a fixed order of precedence; the first
rule that finds something wins, and later mentions never override an earlier rule.  See
docs/tasks.md ("The answer extractor") for the same rules with examples.

Letters (``extract_letter``), after markdown emphasis (``**``, ``__``, backticks) is removed:

1. An explicit answer statement, the first one in the text: ``answer`` optionally followed by
   ``is`` / ``would be`` / ``should be`` / ``will be`` and ``:`` / ``=`` / ``-``, optionally
   ``option`` / ``choice`` / ``letter``, then a letter token (``Answer: (C)``, ``The answer is
   C.``, ``final answer: option b)``).
2. A statement that names the correct option: ``correct/best/right option|choice|letter is X``,
   or ``(option|choice) X is (the) correct/right/best/answer`` (``A is correct``).
3. The completion starts with a letter token: ``C``, ``C.``, ``(C) ...``, ``c)``, ``B: text``.
   A bare ``A`` followed by a lower-case word ("A patient presents...") is the article, not an
   answer.
4. Option text: the text of exactly one option (case-insensitive, whole words) appears in the
   completion, ignoring options whose text is contained in a longer option that also appears;
   when several remain, the one mentioned first.  Only when the task passes the options.
5. The first parenthesised letter anywhere: ``... I'd go with (B) ...``.
6. A standalone upper-case letter anywhere, only when exactly one distinct valid letter appears
   that way (``It must be D`` -> D; ``between B and C`` -> nothing).

A *letter token* is an upper-case valid letter standing alone (not part of a word), optionally in
parentheses or brackets, or a lower-case valid letter that is in parentheses or followed by
``)``, ``.``, ``:`` or the end of the text (so ``c)`` counts and "is a bit" does not).

Labels (``extract_label``), case-insensitive, whole words, after the same clean-up:

1. An explicit answer statement: ``answer`` / ``final answer`` / ``final decision`` /
   ``decision`` / ``verdict`` (+ ``is`` / ``:``) followed by a label, the first one.
2. The completion starts with a label (``No.``, ``Yes, because ...``, ``maybe``,
   ``**True**``).
3. Exactly one distinct label word appears anywhere in the text.

Otherwise nothing (``None``), which scores 0.  Synonyms (e.g. for RQE: entailed -> true) can be
mapped by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Optional

from evaluator.tasks.base import SampleScore

_MARKUP = re.compile(r"\*\*|__|`+")


def clean(text: str) -> str:
    """Drop markdown emphasis and surrounding whitespace."""
    return _MARKUP.sub("", text or "").strip()


def _letter_token(letters: str) -> str:
    upper = re.escape(letters.upper())
    lower = re.escape(letters.lower())
    # (X) [X] X) X. X: X (upper) | x) x. x: (x) [x] x<end> (lower)
    return (
        rf"(?:[\(\[]\s*(?P<p>[{upper}{lower}])\s*[\)\]]"
        rf"|(?P<u>[{upper}])(?![A-Za-z0-9])"
        rf"|(?P<l>[{lower}])(?=[\).:]|\s*$))"
    )


def _token_letter(m: re.Match) -> str:
    return (m.group("p") or m.group("u") or m.group("l")).upper()


def extract_letter(
    text: str, letters: str = "ABCD", options: Optional[Sequence[str]] = None
) -> Optional[str]:
    """The chosen option letter (upper case), or None.  See the module docstring for the rules."""
    s = clean(text)
    if not s:
        return None
    tok = _letter_token(letters)
    # 1. explicit answer statement
    m = re.search(
        rf"(?i:\banswer\b(?:\s+(?:is|would\s+be|should\s+be|will\s+be))?\s*[:=\-]?\s*"
        rf"(?:(?:option|choice|letter)\s*[:\-]?\s*)?)(?<![A-Za-z]){tok}",
        s,
    )
    if m:
        return _token_letter(m)
    # 2. the correct option named
    m = re.search(
        rf"(?i:\b(?:correct|best|right)\s+(?:option|choice|letter)\s*(?:is|would\s+be|:)?\s*)(?<![A-Za-z]){tok}",
        s,
    )
    if m:
        return _token_letter(m)
    m = re.search(
        rf"(?:(?i:\b(?:option|choice)\s+)|(?<![\w\s])\s*|^){tok}(?i:\s*(?:is|would\s+be)\s+(?:the\s+)?(?:correct|right|best|answer))",
        s,
    )
    if m:
        return _token_letter(m)
    # 3. starts with a letter token (but "A patient ..." is the article)
    m = re.match(tok, s)
    if m and not (m.group("u") == "A" and re.match(r"A\s+[a-z]", s)):
        return _token_letter(m)
    # 4. option text
    if options:
        low = s.lower()
        found: list[tuple[int, int, str]] = []  # (position, -length, letter)
        for letter, opt in zip(letters.upper(), options):
            o = (opt or "").strip().lower()
            if not o:
                continue
            hit = re.search(rf"(?<!\w){re.escape(o)}(?!\w)", low)
            if hit:
                found.append((hit.start(), len(o), letter))
        texts = {letter: (options[letters.upper().index(letter)] or "").strip().lower() for _, _, letter in found}
        kept = [
            f for f in found
            if not any(f[2] != g[2] and texts[f[2]] in texts[g[2]] and len(texts[g[2]]) > len(texts[f[2]]) for g in found)
        ]  # fmt: skip
        if kept:
            return min(kept)[2]
    # 5. first parenthesised letter
    m = re.search(rf"[\(\[]\s*([{re.escape(letters.upper())}])\s*[\)\]]", s)
    if m:
        return m.group(1)
    # 6. exactly one distinct standalone upper-case letter
    seen = {
        x.group(1)
        for x in re.finditer(rf"(?<![A-Za-z0-9'])([{re.escape(letters.upper())}])(?![A-Za-z0-9'])", s)
        if not (x.group(1) == "A" and re.match(r"A\s+[a-z]", s[x.start():]))
    }
    if len(seen) == 1:
        return seen.pop()
    return None


def extract_label(
    text: str, labels: Sequence[str], synonyms: Optional[Mapping[str, str]] = None
) -> Optional[str]:
    """The chosen label (lower case, one of ``labels``), or None.  See the module docstring.

    ``synonyms`` maps other words to labels (``{"entailed": "true"}``); they count as labels.
    """
    s = clean(text)
    if not s:
        return None
    words = {w.lower(): w.lower() for w in labels}
    for k, v in (synonyms or {}).items():
        words[k.lower()] = v.lower()
    alt = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    word = rf"(?<![\w-])({alt})(?![\w-])"
    m = re.search(
        rf"\b(?:final\s+answer|answer|final\s+decision|decision|verdict)\b(?:\s+(?:is|would\s+be|should\s+be))?"
        rf"\s*[:=\-]?\s*[\(\[\"']?\s*{word}",
        s,
        re.IGNORECASE,
    )
    if m:
        return words[m.group(1).lower()]
    m = re.match(rf"[\s\(\[\"'>#*-]*{word}", s, re.IGNORECASE)
    if m:
        return words[m.group(1).lower()]
    seen = {words[x.group(1).lower()] for x in re.finditer(word, s, re.IGNORECASE)}
    if len(seen) == 1:
        return seen.pop()
    return None


def score_label(completion: str, gold: str, labels: Sequence[str],
                synonyms: Optional[Mapping[str, str]] = None) -> SampleScore:  # fmt: skip
    """Accuracy of the label extracted from ``completion`` against ``gold`` (yes/no/maybe, true/false)."""
    pred = extract_label(completion, labels, synonyms)
    return SampleScore(extracted=pred, reference=gold, scores={"accuracy": float(pred == gold)})
