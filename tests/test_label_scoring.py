"""How `switchman label` scores an answer: reference checks and judge verdicts."""

from __future__ import annotations

import asyncio

import pytest

from switchman.label.budget import SpendCap
from switchman.label.scoring import (
    VerdictError,
    chosen_letter,
    final_number,
    judge_prompt,
    normalise,
    parse_verdict,
    score_reference,
)


@pytest.mark.parametrize(
    ("answer", "reference", "quality"),
    [
        ("Paris", "Paris", 1.0),
        ("  the PARIS. ", "Paris", 1.0),
        ("The answer is: Paris!", "paris", 1.0),
        ("Paris, France", "Paris", 0.0),
        ("Lyon", "Paris", 0.0),
        ("", "Paris", 0.0),
    ],
)
def test_exact_match_is_normalised(answer: str, reference: str, quality: float) -> None:
    score = score_reference(answer, reference)
    assert (score.quality, score.method) == (quality, "exact")


@pytest.mark.parametrize(
    ("answer", "reference", "quality"),
    [
        ("The answer is (C)", "C", 1.0),
        ("The answer is (C)", "(C)", 1.0),
        ("C", "c", 1.0),
        ("(c) Paris", "C.", 1.0),
        ("**Answer:** C", "C", 1.0),
        ("C. Paris is the capital", "C", 1.0),
        ("I compared (A) with (C); the answer is (A).", "C", 0.0),
        ("The answer is (B)", "C", 0.0),
        ("the answer is a dog", "A", 0.0),  # the article is not option A
        ("between (A) and (C)", "C", 0.0),  # two options named: no choice
        ("no idea", "C", 0.0),
    ],
)
def test_multiple_choice_letter(answer: str, reference: str, quality: float) -> None:
    score = score_reference(answer, reference)
    assert (score.quality, score.method) == (quality, "choice")


@pytest.mark.parametrize(
    ("answer", "reference", "tolerance", "quality"),
    [
        ("#### 42", "42", 1e-6, 1.0),
        ("3 + 4 = 7, so the answer is 42.", "42.0", 1e-6, 1.0),
        ("The total is $1,234.50", "1234.5", 1e-6, 1.0),
        ("about 3.14159", "3.1416", 1e-4, 1.0),
        ("about 3.14159", "3.1416", 1e-6, 0.0),
        ("It is 41", "42", 1e-6, 0.0),
        ("It is 989", "1000", 0.01, 0.0),
        ("It is 995", "1000", 0.01, 1.0),  # within 1% of 1000
        ("0.0000005", "0", 1e-6, 1.0),  # absolute below 1
        ("no number", "7", 1e-6, 0.0),
    ],
)
def test_number_within_tolerance(
    answer: str, reference: str, tolerance: float, quality: float
) -> None:
    score = score_reference(answer, reference, tolerance)
    assert (score.quality, score.method) == (quality, "number")


def test_helpers_read_what_an_answer_states() -> None:
    assert normalise("The  Quick, brown fox!") == "quick brown fox"
    assert chosen_letter("Answer - D") == "D"
    assert chosen_letter("nothing here") is None
    assert final_number("first 3, then #### -12") == -12.0
    assert final_number("none") is None


@pytest.mark.parametrize(
    ("verdict", "quality"),
    [
        ('{"reason": "right", "score": 10}', 1.0),
        ('{"reason": "wrong", "score": 1}', 0.0),
        ('{"score": "4"}', 1 / 3),
        ('{"score": 7, "rating": "9"}', 2 / 3),  # the JSON score, not another number
        ("Mostly right.\nScore: 7", 2 / 3),
        ("**Score:** 10/10", 1.0),
    ],
)
def test_verdict_score_maps_one_to_ten_onto_zero_one(verdict: str, quality: float) -> None:
    score = parse_verdict(verdict)
    assert score.method == "judge"
    assert score.quality == pytest.approx(quality)


@pytest.mark.parametrize(
    ("verdict", "problem"),
    [
        ("The answer is fine.", "states no score"),
        ('{"reason": "x"}', "states no score"),
        ('{"score": true}', "states no score"),
        ('{"reason": "1", "score": 0}', "not from 1 to 10"),
        ("Score: 11", "not from 1 to 10"),
    ],
)
def test_verdict_without_a_usable_score_is_an_error_not_a_zero(verdict: str, problem: str) -> None:
    with pytest.raises(VerdictError, match=problem):
        parse_verdict(verdict)


def test_judge_prompt_holds_the_prompt_the_answer_and_the_scale() -> None:
    text = judge_prompt("What is 2+2?", "4")
    assert "What is 2+2?" in text and "[Answer]\n4" in text
    assert '"score"' in text and "1 (" in text and "10 (" in text


def test_spend_cap_never_lets_holds_pass_the_limit() -> None:
    async def scenario() -> tuple[bool, bool, bool, float]:
        cap = SpendCap(1.0)
        first = await cap.hold(0.6)
        alone_too_big = await cap.hold(1.5)  # cannot fit even with nothing else: refused
        second = asyncio.create_task(cap.hold(0.6))  # waits: 0.6 is held
        await asyncio.sleep(0)
        assert not second.done()
        await cap.settle(0.6, 0.1)  # the first call cost less than its worst case
        waited = await second
        return first, alone_too_big, waited, cap.spent + cap.held

    first, too_big, waited, committed = asyncio.run(scenario())
    assert (first, too_big, waited) == (True, False, True)
    assert committed == pytest.approx(0.7)
