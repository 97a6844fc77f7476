"""Scoring an answer: against a reference answer, or from a judge model's verdict.

A reference says what kind of check it wants by its own shape, so one column can mix kinds:
a lone letter (``C``, ``(C)``, ``C.``) is a multiple-choice key and the answer's chosen
letter is compared; a number is compared with the answer's final number within a
tolerance; anything else is a normalised exact match (case, punctuation, articles and
spacing ignored), of the whole answer or of what follows its last "answer is" / "answer:".
Models wrap short answers in sentences, so the checks look for the answer's own statement
of its result rather than demanding the bare token.

A judge reads the prompt and the answer with a rubric and replies with a JSON object
``{"reason": ..., "score": N}`` (N from 1 to 10), mapped to [0, 1] as (N - 1) / 9. JSON,
because a JSON-mode call (``response_format: json_object``) holds even a small model to
it; a verdict in words ("Score: 7") is read too. A verdict without a score is an error,
never a zero: a zero is a claim about the answer, a parse failure is not.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Any

#: Letters a multiple-choice key may use (MMLU-Pro goes to J).
CHOICE_LETTERS = "ABCDEFGHIJ"

_KEY = re.compile(r"^\(?([A-Ja-j])[).:]?$")
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_WHOLE_NUMBER = re.compile(rf"^\s*[$€£]?\s*({_NUMBER})\s*%?\s*$")
#: "The answer is (C)", "answer: C", "Answer - C", "final answer is **C**"; a bare letter
#: must be a capital, so "the answer is a dog" picks no option.
_STATED = re.compile(
    r"(?i:answer)\s*(?:(?i:is)|:|-|=)?\s*[*_\s]*"
    r"(?:\(([A-Ja-j])\)|([A-J])(?!\w))"
)
#: The answer opens with its letter: "C", "(C) Paris", "C. Paris", "C: Paris".
_LEADING = re.compile(r"^\s*[*_]*\(?([A-Ja-j])(?:[).:]|\s*$)")
_PARENTHESISED = re.compile(r"\(([A-Ja-j])\)")
_ANSWER_MARK = re.compile(r"(?:final\s+)?answer\s*(?:is|:)\s*", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans(string.punctuation, " " * len(string.punctuation))

#: How many characters of a verdict an error message quotes.
_QUOTE = 120


@dataclass(frozen=True, slots=True)
class Score:
    """An answer's quality in [0, 1] and which check gave it (``exact``, ``choice``,
    ``number`` or ``judge``)."""

    quality: float
    method: str


class VerdictError(ValueError):
    """A judge's verdict that states no usable score."""


def normalise(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style)."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def parse_number(text: str) -> float | None:
    """``text`` as a number if it is one (thousands separators, a currency sign or a
    percent sign allowed), else None."""
    found = _WHOLE_NUMBER.match(text)
    if found is None:
        return None
    return float(found.group(1).replace(",", ""))


def choice_key(text: str) -> str | None:
    """The letter of a multiple-choice reference (``C``, ``(c)``, ``C.``), else None."""
    found = _KEY.match(text.strip())
    return found.group(1).upper() if found else None


def chosen_letter(answer: str) -> str | None:
    """The option an answer picks: its last "answer is X", else a letter it opens with,
    else its only parenthesised letter; None when it names none (or several)."""
    stated = _STATED.findall(answer)
    if stated:
        return "".join(stated[-1]).upper()
    leading = _LEADING.match(answer)
    if leading:
        return leading.group(1).upper()
    marked = {letter.upper() for letter in _PARENTHESISED.findall(answer)}
    return marked.pop() if len(marked) == 1 else None


def final_number(answer: str) -> float | None:
    """The number an answer ends on: after its last "####" or "answer is" if it has one,
    else the last number in it."""
    tail = answer
    for marker in ("####", *(m.group(0) for m in _ANSWER_MARK.finditer(answer))):
        at = tail.rfind(marker)
        if at >= 0:
            tail = tail[at + len(marker) :]
    numbers = _NUMBER_RE.findall(tail) or _NUMBER_RE.findall(answer)
    return float(numbers[-1].replace(",", "")) if numbers else None


def _stated_text(answer: str) -> str:
    """What follows the answer's last "answer is" / "answer:", else the whole answer."""
    marks = list(_ANSWER_MARK.finditer(answer))
    return answer[marks[-1].end() :] if marks else answer


def score_reference(answer: str, reference: str, tolerance: float = 1e-6) -> Score:
    """1.0 if ``answer`` gives ``reference``, else 0.0 (see the module doc for the checks).

    A number matches when ``|answer - reference| <= tolerance * max(1, |reference|)``.
    """
    key = choice_key(reference)
    if key is not None:
        return Score(float(chosen_letter(answer) == key), "choice")
    target = parse_number(reference)
    if target is not None:
        got = final_number(answer)
        ok = got is not None and abs(got - target) <= tolerance * max(1.0, abs(target))
        return Score(float(ok), "number")
    want = normalise(reference)
    ok = bool(want) and want in (normalise(answer), normalise(_stated_text(answer)))
    return Score(float(ok), "exact")


RUBRIC = """You are grading an AI assistant's answer to a user's prompt.

[Prompt]
{prompt}

[Answer]
{answer}

Judge the answer's correctness, helpfulness and completeness for this prompt. Reply with \
a JSON object: {{"reason": "<one or two sentences>", "score": <an integer from 1 (useless \
or wrong) to 10 (fully correct and complete)>}}"""

#: "score": 7, "Score: 7", "score = 7/10", "**Score:** 8"; the last one counts.
_SCORE = re.compile(r"score\W{0,4}(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def judge_prompt(prompt: str, answer: str) -> str:
    """The rubric message a judge model is sent for one answer."""
    return RUBRIC.format(prompt=prompt, answer=answer)


def parse_verdict(verdict: str) -> Score:
    """The score of a judge's verdict, mapped from 1-10 to [0, 1].

    The verdict's JSON ``score`` if it is a JSON object with one, else the last "score"
    it states in words. Raises :class:`VerdictError` when it states none from 1 to 10.
    """
    value: Any = None
    with contextlib.suppress(ValueError):
        parsed = json.loads(verdict)
        if isinstance(parsed, dict):
            value = parsed.get("score")
    if value is None:
        found = _SCORE.findall(verdict)
        value = float(found[-1]) if found else None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VerdictError(f"the judge's verdict states no score: {_quoted(verdict)}")
    if not (math.isfinite(value) and 1.0 <= value <= 10.0):
        raise VerdictError(f"the judge's score {value:g} is not from 1 to 10: {_quoted(verdict)}")
    return Score((float(value) - 1.0) / 9.0, "judge")


def _quoted(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _QUOTE else flat[:_QUOTE] + "...")
