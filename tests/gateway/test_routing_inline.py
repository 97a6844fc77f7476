"""Where and with what a router's estimate is made: a prior alone on the event loop; a trained
router's usual prompts together with the others of the same loop turn, on the loop; very long
ones alone in a thread (tokenising grows with length; the loop must not stall).

The scorer here records the calls it gets; what it returns is each prompt's length, so that
every request can be checked to get its own row back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np

from switchman.estimates import Estimates
from switchman.gateway.route.batching import EstimateBatcher
from switchman.gateway.route.routing import INLINE_MAX_CHARS, RouterEntry, score_request


class _LengthScorer:
    """Quality = the prompt's length; refuses to score a prompt that reads "unscorable"."""

    models = ("a", "b")
    default_cost_weight = 0.0

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str]] = []  # (texts, thread name)

    def estimate(self, prompts: Sequence[str]) -> Estimates:
        self.calls.append((list(prompts), threading.current_thread().name))
        if "unscorable" in prompts:
            raise ValueError("cannot score this prompt")
        lengths = np.array([[len(p), len(p)] for p in prompts], dtype=float)
        return Estimates(self.models, lengths, np.zeros_like(lengths))


def _quality(scored: tuple[Estimates, np.ndarray | None]) -> float:
    est, _ = scored
    assert est.quality.shape == (1, 2)
    return float(est.quality[0, 0])


async def _together(entry: RouterEntry, texts: Sequence[str]) -> list:
    return await asyncio.gather(*(score_request(entry, t) for t in texts),
                                return_exceptions=True)


def test_a_prior_scores_each_prompt_alone_whatever_its_length() -> None:
    scorer = _LengthScorer()
    entry = RouterEntry("switchman/auto", scorer, 0.0, inline=True)
    texts = ["x" * (10 * INLINE_MAX_CHARS), "hi"]
    scored = asyncio.run(_together(entry, texts))
    assert [_quality(s) for s in scored] == [len(t) for t in texts]
    assert [texts for texts, _ in scorer.calls] == [[t] for t in texts]


def test_a_trained_router_scores_one_loop_turns_prompts_in_one_call() -> None:
    scorer = _LengthScorer()
    entry = RouterEntry("switchman/learned", scorer, 0.0, inline=False)
    texts = ["a" * n for n in range(1, 6)] + ["x" * INLINE_MAX_CHARS]
    scored = asyncio.run(_together(entry, texts))
    assert [_quality(s) for s in scored] == [len(t) for t in texts]
    assert scorer.calls == [(texts, threading.main_thread().name)]


def test_a_very_long_prompt_is_scored_alone_in_a_thread() -> None:
    scorer = _LengthScorer()
    entry = RouterEntry("switchman/learned", scorer, 0.0, inline=False)
    long = "x" * (INLINE_MAX_CHARS + 1)
    scored = asyncio.run(_together(entry, ["short", long]))
    assert [_quality(s) for s in scored] == [5, len(long)]
    by_text = {texts[0]: thread for texts, thread in scorer.calls}
    assert by_text["short"] == threading.main_thread().name
    assert by_text[long] != threading.main_thread().name


def test_a_prompt_that_cannot_be_scored_fails_only_its_own_request() -> None:
    scorer = _LengthScorer()
    entry = RouterEntry("switchman/learned", scorer, 0.0, inline=False)
    scored = asyncio.run(_together(entry, ["one", "unscorable", "three"]))
    assert _quality(scored[0]) == 3 and _quality(scored[2]) == 5
    assert isinstance(scored[1], ValueError)
    assert [texts for texts, _ in scorer.calls] == [
        ["one", "unscorable", "three"], ["one"], ["unscorable"], ["three"]]


def test_batches_are_cut_at_the_limit_and_skip_requests_gone_meanwhile() -> None:
    scorer = _LengthScorer()
    batcher = EstimateBatcher(lambda texts: (scorer.estimate(texts), None), max_batch=2)

    async def main() -> list:
        tasks = [asyncio.create_task(batcher.estimate("p" * n)) for n in range(1, 7)]
        await asyncio.sleep(0)  # every task is now waiting for the flush
        tasks[1].cancel()  # a client that went away before its prompt was scored
        return await asyncio.gather(*tasks, return_exceptions=True)

    scored = asyncio.run(main())
    assert isinstance(scored[1], asyncio.CancelledError)
    assert [_quality(s) for i, s in enumerate(scored) if i != 1] == [1, 3, 4, 5, 6]
    assert [texts for texts, _ in scorer.calls] == [["p", "ppp"], ["pppp", "ppppp"],
                                                    ["pppppp"]]

