"""Budget pacing: spend never passes the budget at any step of a replay, most of it is used,
and the weight it paces with buys more quality than an all-cheap or all-dear policy."""

from __future__ import annotations

import numpy as np
import pytest

from switchman.budgets import BudgetPacer, CostBound
from switchman.estimates import Estimates
from switchman.learning.replay import ReplaySettings, StreamOutcomes, replay

MODELS = ("cheap", "mid", "dear")


def _stream(n: int, seed: int = 0) -> tuple[Estimates, StreamOutcomes, np.ndarray, np.ndarray]:
    """Dearer models answer better; costs vary per prompt around the estimates (up to 3x)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.random(n)
    expected_q = np.column_stack([0.9 - 0.6 * difficulty, 0.95 - 0.4 * difficulty,
                                  0.98 - 0.1 * difficulty])
    expected_c = np.tile([1e-4, 1e-3, 1e-2], (n, 1)) * rng.uniform(0.5, 1.5, (n, 1))
    quality = (rng.random((n, 3)) < expected_q).astype(float)
    cost = expected_c * rng.uniform(0.3, 3.0, (n, 3))
    return (Estimates(MODELS, expected_q, expected_c), StreamOutcomes(MODELS, quality, cost),
            quality, cost)


@pytest.mark.parametrize("share", [0.05, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1])
def test_spend_never_exceeds_the_budget_in_a_replay(share: float, seed: int) -> None:
    n = 1500
    estimates, outcomes, quality, cost = _stream(n, seed)
    budget = share * cost[:, 2].sum()  # a share of what the dearest model would spend
    result = replay(estimates, outcomes, ReplaySettings(budget_usd=budget, seed=seed))
    spent = np.cumsum(result.cost)
    assert spent.max() <= budget
    assert spent[-1] >= 0.85 * budget  # pacing spends the budget, it does not hoard it
    assert (result.choice >= 0).mean() > 0.99  # and it lasts: almost nothing refused
    cheapest = quality[:, 0].mean()
    assert result.quality.mean() > cheapest + 0.02  # the money bought quality


def test_the_pacer_without_estimates_steers_by_its_dual() -> None:
    """The per-request step alone (no estimates recorded) raises the weight when spending
    runs ahead of the budget and lowers it when it lags."""
    pacer = BudgetPacer(budget_usd=1.0, initial_weight=10.0)
    start = pacer.cost_weight_for(spent_usd=0.0, remaining=100)
    for step in range(20):
        pacer.record_spend(expected_cost=0.05, spent_usd=0.05 * step, remaining=100 - step)
    assert pacer.cost_weight_for(1.0, 80) > start
    high = pacer.cost_weight_for(0.0, 80)
    for _ in range(20):
        pacer.record_spend(expected_cost=0.001, spent_usd=0.0, remaining=80)
    assert pacer.cost_weight_for(0.0, 80) < high


def test_pacing_never_lowers_the_callers_own_weight() -> None:
    pacer = BudgetPacer(budget_usd=1e6, floor_weight=50.0)
    for _ in range(30):
        pacer.record_spend(1e-6, 0.0, 1000, np.array([0.2, 0.9]), np.array([1e-6, 1e-3]))
    assert pacer.cost_weight_for(0.0, 1000) == 50.0


def test_affordable_is_the_hard_rule() -> None:
    pacer = BudgetPacer(budget_usd=1.0)
    np.testing.assert_array_equal(pacer.affordable(np.array([0.1, 0.5, 0.6]), 0.5),
                                  [True, True, False])
    bound = CostBound(2, prior_factor=2.0, margin=1.5)
    bound.observe(1, expected_cost=1.0, actual_cost=4.0)
    np.testing.assert_allclose(bound(np.array([1.0, 1.0])), [2.0, 6.0])


def test_the_pacer_state_round_trips() -> None:
    pacer = BudgetPacer(budget_usd=2.0, floor_weight=1.0, initial_weight=5.0)
    pacer.record_spend(0.1, 0.0, 10)
    restored = BudgetPacer.from_state(pacer.to_state())
    assert restored.cost_weight_for(0.1, 9) == pacer.cost_weight_for(0.1, 9)
    with pytest.raises(ValueError):
        BudgetPacer(budget_usd=0.0)
