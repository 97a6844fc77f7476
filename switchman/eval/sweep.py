"""Decisions across the cost-weight sweep, and how they score on observed outcomes.

``sweep_decisions`` gives the rows ``switchman route`` writes: one per (operating point,
prompt), point 0 being the cheapest operating point and the last the best expected quality,
as DESIGN's command-line contract specifies. ``sweep_points`` and ``score_picks`` score a
sweep's picks on observed quality and cost: what eval reports and what the stacked
estimator selects its blend by. Low in the house: policy, estimates and metrics only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from switchman import policy
from switchman.estimates import Estimates
from switchman.eval import metrics
from switchman.progress import stage

if TYPE_CHECKING:  # pandas only where decisions are tabled: routing needs none of it
    import pandas as pd

    from switchman.data import OutcomeMatrices


def sweep_picks(estimates: Estimates, n_points: int,
                progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(cost weights from cheapest to best quality, picks (n_points, n_prompts)).

    ``progress`` names the stage's bar (``switchman.progress``); without it the sweep is
    one of many inside a fit, and silent.
    """
    weights = policy.cost_weight_sweep(estimates, n_points)
    picks = []
    with stage(progress or "sweep", len(weights), unit="point",
               show=None if progress else False) as bar:
        for w in weights:
            picks.append(policy.choose(estimates, float(w)))
            bar.update(1)
    return weights, np.stack(picks)


def sweep_decisions(estimates: Estimates, prompt_ids: Sequence[str], n_points: int) -> pd.DataFrame:
    """The DECISIONS table for a batch of prompts."""
    import pandas as pd

    weights, picks = sweep_picks(estimates, n_points)
    n_prompts = len(prompt_ids)
    models = np.asarray(estimates.models, dtype=object)
    return pd.DataFrame({
        "point": np.repeat(np.arange(len(weights)), n_prompts),
        "cost_weight": np.repeat(weights, n_prompts),
        "prompt_id": np.tile(np.asarray(prompt_ids, dtype=object), len(weights)),
        "model": models[picks.ravel()],
    })


def sweep_points(quality: np.ndarray, cost: np.ndarray,
                 picks: np.ndarray) -> list[metrics.Point]:
    """Observed (mean cost, mean quality) of each point's picks (n_points, n_prompts)."""
    return [metrics.operating_point(quality, cost, chosen) for chosen in picks]


@dataclass
class SweepResult:
    """A router's operating points on a test set and the decisions behind them."""

    points: list[metrics.Point] = field(default_factory=list)  # (mean cost, mean quality)
    strong_shares: list[float] = field(default_factory=list)
    decisions: pd.DataFrame | None = None


def score_picks(test: OutcomeMatrices, weights: np.ndarray, picks: np.ndarray,
                name: str) -> SweepResult:
    """Observed operating points of a sweep's picks (n_points, n_prompts) on ``test``."""
    import pandas as pd

    rows = np.arange(picks.shape[1])
    strong = int(np.argmax(test.quality.mean(axis=0)))
    result = SweepResult(points=sweep_points(test.quality, test.cost, picks),
                         strong_shares=[float(np.mean(chosen == strong)) for chosen in picks])
    models = np.asarray(test.models, dtype=object)
    result.decisions = pd.concat([pd.DataFrame({
        "router": name, "point": point, "cost_weight": float(w),
        "prompt_id": test.prompt_ids, "task": test.tasks, "model": models[chosen],
        "quality": test.quality[rows, chosen], "cost_usd": test.cost[rows, chosen],
    }) for point, (w, chosen) in enumerate(zip(weights, picks, strict=True))],
        ignore_index=True)
    return result
