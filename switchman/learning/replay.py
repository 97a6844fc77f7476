"""The replay loop: a stream of prompts routed one at a time, learning only from what was chosen.

This is the honest-simulation half of ``switchman replay``: the offline router's estimates
for every stream prompt are computed up front (they depend on the prompt alone, never on
other prompts or outcomes), but decisions are made step by step with the online state and
the budget pacer as they stand at that step, and the outcome of a step is read through
:class:`StreamOutcomes`, which hands out only the chosen model's quality and cost and counts
every read, so a test can prove no other model's outcome was looked at.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from switchman.budgets import BudgetPacer, CostBound
from switchman.estimates import Estimates
from switchman.learning.learner import OnlineLearner

#: The policy's tie-break (see ``switchman.policy.utilities``), for the offline decisions.
_TIE_BREAK_WEIGHT = 1e-6


class StreamOutcomes:
    """The stream's observed outcomes, handed out one (step, model) at a time."""

    def __init__(self, models: tuple[str, ...], quality: np.ndarray, cost: np.ndarray) -> None:
        self.models = models
        self._quality = np.asarray(quality, dtype=np.float64)
        self._cost = np.asarray(cost, dtype=np.float64)
        self.reads: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return int(self._quality.shape[0])

    def answer(self, step: int, column: int) -> tuple[float, float]:
        """(quality, cost) of model ``column`` on prompt ``step``: the one call made."""
        self.reads.append((step, column))
        return float(self._quality[step, column]), float(self._cost[step, column])


@dataclass(frozen=True)
class ReplaySettings:
    """How a stream is replayed. ``cost_weight`` is ignored when ``budget_usd`` is set
    (the pacer sets the weight); ``eligible`` masks the models a run may use."""

    cost_weight: float = 0.0
    budget_usd: float | None = None
    feedback_rate: float = 1.0
    seed: int = 0
    eligible: np.ndarray | None = None


@dataclass
class ReplayResult:
    """Per step: the chosen column (-1: refused), outcome, exploration, weight and spend."""

    models: tuple[str, ...]
    choice: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    explored: np.ndarray
    feedback: np.ndarray
    cost_weight: np.ndarray
    budget_usd: float | None

    def decisions(self, prompt_ids: list[str]) -> pd.DataFrame:
        names = np.asarray([*self.models, None], dtype=object)
        return pd.DataFrame({
            "step": np.arange(len(self.choice)),
            "prompt_id": np.asarray(prompt_ids, dtype=object),
            "model": names[self.choice],
            "cost_usd": self.cost,
            "quality": self.quality,
            "explored": self.explored,
            "feedback": self.feedback,
            "cost_weight": self.cost_weight,
            "spent_usd": np.cumsum(self.cost),
        })


def replay(estimates: Estimates, outcomes: StreamOutcomes, settings: ReplaySettings,
           learner: OnlineLearner | None = None,
           embeddings: np.ndarray | None = None) -> ReplayResult:
    """Route the stream in order; learn (when ``learner`` is given) from a seeded share
    ``feedback_rate`` of the steps. Without a learner this is the offline router.

    Costs are known for every answered step (the bill), so the budget, the worst-case
    bounds and the learner's cost correction see every one; quality feedback is sparse.
    """
    n, k = estimates.quality.shape
    if len(outcomes) != n or outcomes.models != estimates.models:
        raise ValueError("the outcomes and estimates must cover the same prompts and models")
    if learner is not None and embeddings is None:
        raise ValueError("a learning replay needs the prompts' embeddings")
    eligible = np.ones(k, dtype=bool) if settings.eligible is None else settings.eligible
    rng = np.random.default_rng(settings.seed)
    gets_feedback = rng.random(n) < settings.feedback_rate
    pacer = (None if settings.budget_usd is None
             else BudgetPacer(settings.budget_usd, initial_weight=settings.cost_weight or None))
    bound = CostBound(k)
    contexts = None if learner is None else learner.contexts(embeddings, estimates)
    result = ReplayResult(estimates.models, np.full(n, -1), np.zeros(n), np.zeros(n),
                          np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), np.zeros(n),
                          settings.budget_usd)
    spent = 0.0
    for step in range(n):
        weight = settings.cost_weight if pacer is None else pacer.cost_weight_for(spent, n - step)
        mask = eligible
        if contexts is not None:
            beliefs = learner.posterior(contexts[step])
            expected, believed = beliefs.cost, beliefs.quality
        else:
            expected, believed = estimates.cost[step], estimates.quality[step]
        if pacer is not None:
            cheapest = float(expected[eligible].min()) if eligible.any() else 0.0
            reserve = (n - step - 1) * cheapest * pacer.cost_ratio
            mask = mask & pacer.affordable(bound(expected), spent, reserve)
        if contexts is not None:
            decision = learner.decide(contexts[step], weight, mask)
            column, explored = decision.index, decision.explored
        else:
            utility = estimates.quality[step] - (weight + _TIE_BREAK_WEIGHT) * expected
            utility = np.where(mask, utility, -np.inf)
            column, explored = int(np.argmax(utility)), False
            if not np.isfinite(utility[column]):
                column = -1
        result.cost_weight[step] = weight
        if pacer is not None:
            pacer.record_spend(float(expected[column]) if column >= 0 else 0.0, spent, n - step,
                               believed, expected, eligible)
        if column < 0:  # no eligible model fits what is left of the budget: refused
            continue
        quality, cost = outcomes.answer(step, column)
        result.choice[step], result.quality[step], result.cost[step] = column, quality, cost
        result.explored[step] = explored
        spent += cost
        bound.observe(column, float(expected[column]), cost)
        if contexts is not None:
            feedback = bool(gets_feedback[step])
            result.feedback[step] = feedback
            learner.update(estimates.models[column], contexts[step],
                           quality if feedback else None, cost)
    return result
