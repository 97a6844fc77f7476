"""One labelling run: every (prompt, model) pair not labelled yet, answered and scored.

Pairs go prompt by prompt (all models of a prompt before the next prompt), so a run cut
short leaves prompts that every model answered: the shape routers train on. ``concurrency``
workers take pairs in turn; each pair is the candidate's call and then, with a judge, the
judge's call, each started only if its worst case fits ``--max-usd``. Finished rows are
written out at most every ``FLUSH_S`` seconds and when the run ends, however it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from switchman.label import store
from switchman.label.budget import SpendCap
from switchman.label.calls import Answer, CallFailed, PoolCalls
from switchman.label.scoring import (
    Score,
    VerdictError,
    judge_prompt,
    parse_verdict,
    score_reference,
)

#: Longest wait between two writes of the finished rows (what a SIGKILL can lose).
FLUSH_S = 1.0


@dataclass(frozen=True, slots=True)
class Scoring:
    """How answers are scored: ``reference`` names a prompts column, else ``judge`` a model."""

    reference: str | None = None
    judge: str | None = None
    tolerance: float = 1e-6


class _NotStarted(Exception):
    """A call whose worst case does not fit the spend cap."""


@dataclass
class Summary:
    """What a run did, for the closing report."""

    todo: int = 0
    done: int = 0
    skipped: int = 0
    failures: dict[store.Pair, dict[str, Any]] = field(default_factory=dict)
    answer_usd: float = 0.0
    judge_usd: float = 0.0
    rows: int = 0
    interrupted: bool = False

    @property
    def not_started(self) -> int:
        return sum(1 for r in self.failures.values() if r["stage"] == "budget")

    @property
    def failed(self) -> int:
        return len(self.failures) - self.not_started


class LabelRun:
    """Label ``prompts`` (``prompt_id, prompt`` and the scoring's columns) with ``models``."""

    def __init__(
        self,
        calls: PoolCalls,
        prompts: pd.DataFrame,
        models: Sequence[str],
        scoring: Scoring,
        out: Path,
        cap: SpendCap,
        concurrency: int,
    ) -> None:
        self.calls, self.prompts, self.models = calls, prompts, list(models)
        self.scoring, self.out, self.cap = scoring, out, cap
        self.concurrency = concurrency
        self.rows = store.read_finished(
            out, dict(zip(prompts["prompt_id"], prompts["prompt"], strict=True))
        )
        self._new: list[dict[str, Any]] = []
        done = store.finished_pairs(self.rows)
        self.failures = {p: r for p, r in store.read_failures(out).items() if p not in done}
        self.summary = Summary()
        self.summary.skipped = sum(
            1 for pid in prompts["prompt_id"] for m in self.models if (pid, m) in done
        )
        self._pairs = [
            (i, m)
            for i, pid in enumerate(prompts["prompt_id"])
            for m in self.models
            if (pid, m) not in done
        ]
        self.summary.todo = len(self._pairs)
        self._flushed = time.monotonic()
        self._attempted: set[store.Pair] = set()

    async def run(self, progress: Any) -> Summary:
        """Label every pair still to do; ``progress`` (a tqdm-like bar) hears each one."""
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for pair in self._pairs:
            queue.put_nowait(pair)
        workers = [
            asyncio.create_task(self._worker(queue, progress))
            for _ in range(min(self.concurrency, max(1, len(self._pairs))))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.flush()
        return self.summary

    async def _worker(self, queue: asyncio.Queue[tuple[int, str]], progress: Any) -> None:
        while not queue.empty():
            index, model = queue.get_nowait()
            await self._label(index, model)
            progress.update(1)
            progress.set_postfix_str(f"spent ${self.cap.spent:.6f}")
            if time.monotonic() - self._flushed >= FLUSH_S:
                self.flush()

    async def _label(self, index: int, model: str) -> None:
        """Answer and score one pair; its row, or its failure record, is kept."""
        prompt = self.prompts.iloc[index]
        pair = (str(prompt["prompt_id"]), model)
        self._attempted.add(pair)
        earlier = self.failures.get(pair)  # kept until this attempt ends one way or another
        answer = store.cached_answer(earlier) if earlier else None
        try:
            if answer is None:
                answer = await self._ask(model, str(prompt["prompt"]))
                self.summary.answer_usd += answer.cost_usd
        except (CallFailed, _NotStarted) as exc:
            stage = "budget" if isinstance(exc, _NotStarted) else "answer"
            self.failures[pair] = store.failure_record(pair, stage, str(exc))
            return
        row = {
            "prompt_id": pair[0],
            "prompt": prompt["prompt"],
            "task": prompt.get("task", "unknown"),
            "model": model,
            "cost_usd": answer.cost_usd,
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
            "cost_source": answer.cost_source,
            "response": answer.text,
            "latency_s": answer.latency_s,
        }
        try:
            row.update(await self._score(prompt, answer))
        except (CallFailed, VerdictError, _NotStarted) as exc:
            stage = "budget" if isinstance(exc, _NotStarted) else "judge"
            self.failures[pair] = store.failure_record(pair, stage, str(exc), answer)
            return
        self.failures.pop(pair, None)
        self._new.append(row)
        self.summary.done += 1

    async def _ask(self, model: str, content: str, json_reply: bool = False) -> Answer:
        """One call within the spend cap."""
        req = self.calls.request(content, json_reply)
        worst = self.calls.worst_case_usd(model, req)
        if not await self.cap.hold(worst):
            raise _NotStarted(
                f"not started: its worst case would take spend past --max-usd {self.cap.limit:g}"
            )
        cost = 0.0
        try:
            answer = await self.calls.ask(model, req)
            cost = answer.cost_usd
            return answer
        finally:
            await self.cap.settle(worst, cost)

    async def _score(self, prompt: pd.Series, answer: Answer) -> dict[str, Any]:
        """The row's quality and how it was found."""
        sc = self.scoring
        if sc.reference is not None:
            reference = str(prompt[sc.reference])
            score = score_reference(answer.text, reference, sc.tolerance)
            return {"quality": score.quality, "scoring": score.method, "reference": reference}
        assert sc.judge is not None
        # JSON mode where the judge declares it: a small model then cannot ramble past it.
        json_reply = "json_mode" in self.calls.models[sc.judge].capabilities
        verdict = await self._ask(
            sc.judge, judge_prompt(str(prompt["prompt"]), answer.text), json_reply
        )
        self.summary.judge_usd += verdict.cost_usd
        score: Score = parse_verdict(verdict.text)
        return {
            "quality": score.quality,
            "scoring": score.method,
            "judge_model": sc.judge,
            "judge_verdict": verdict.text,
            "judge_cost_usd": verdict.cost_usd,
        }

    def flush(self) -> None:
        """Write the finished rows and the failures as they are now."""
        if self._new:
            self.rows = (
                pd.concat([self.rows, pd.DataFrame(self._new)], ignore_index=True)
                if len(self.rows)
                else pd.DataFrame(self._new)
            )
            self._new = []
            store.write_finished(self.out, self.rows)
        store.write_failures(self.out, self.failures)
        self.summary.failures = {p: r for p, r in self.failures.items() if p in self._attempted}
        self.summary.rows = len(self.rows)
        self._flushed = time.monotonic()


def failure_lines(summary: Summary, limit: int = 10) -> list[str]:
    """The run's failures grouped by model and reason, most frequent first."""
    # A reason lists every attempt; the last one is why the call finally failed.
    counts = Counter(
        (r["model"], r["stage"], r["reason"].split("; ")[-1]) for r in summary.failures.values()
    )
    lines = [
        f"  {model} ({stage}) x{n}: {reason}"
        for (model, stage, reason), n in counts.most_common(limit)
    ]
    if len(counts) > limit:
        lines.append(f"  ... and {len(counts) - limit} other reasons")
    return lines
