"""Turn estimates plus a request's constraints into a decision: utility = quality - w * cost.

``w`` (the cost weight, quality points per dollar) is the only knob: 0 buys the best expected
quality, a large value the cheapest model. Sweeps, calibration and per-request plans all go
through the same ``utilities`` so that what is evaluated offline is what the gateway does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from switchman.estimates import Estimates

# Breaks exact quality ties toward the cheaper model without moving any real trade-off.
_TIE_BREAK_WEIGHT = 1e-6


@dataclass(frozen=True)
class Constraints:
    """What a request allows, independent of the estimates."""

    allowed_models: frozenset[str] | None = None
    excluded_models: frozenset[str] = frozenset()
    max_cost_usd: float | None = None

    @classmethod
    def of(
        cls,
        allowed_models: Iterable[str] | None = None,
        excluded_models: Iterable[str] = (),
        max_cost_usd: float | None = None,
    ) -> Constraints:
        allowed = None if allowed_models is None else frozenset(allowed_models)
        return cls(allowed, frozenset(excluded_models), max_cost_usd)


def eligibility(estimates: Estimates, constraints: Constraints | None = None,
                extra_mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean (n_prompts, n_models): which models each prompt may go to.

    ``extra_mask`` carries what only the caller knows (context window, required features).
    """
    mask = np.ones(estimates.quality.shape, dtype=bool)
    if constraints is not None:
        names = np.asarray(estimates.models, dtype=object)
        if constraints.allowed_models is not None:
            mask &= np.isin(names, list(constraints.allowed_models))[None, :]
        if constraints.excluded_models:
            mask &= ~np.isin(names, list(constraints.excluded_models))[None, :]
        if constraints.max_cost_usd is not None:
            mask &= estimates.cost <= constraints.max_cost_usd
    if extra_mask is not None:
        mask &= extra_mask
    return mask


def utilities(estimates: Estimates, cost_weight: float,
              mask: np.ndarray | None = None) -> np.ndarray:
    """quality - w * cost per prompt and model; ineligible models get -inf."""
    if cost_weight < 0:
        raise ValueError(f"cost_weight must be >= 0, got {cost_weight}")
    util = estimates.quality - (cost_weight + _TIE_BREAK_WEIGHT) * estimates.cost
    if mask is not None:
        util = np.where(mask, util, -np.inf)
    return util


def choose(estimates: Estimates, cost_weight: float,
           mask: np.ndarray | None = None) -> np.ndarray:
    """Index of the chosen model per prompt; -1 where no model is eligible."""
    util = utilities(estimates, cost_weight, mask)
    picks = np.argmax(util, axis=1)
    if mask is not None:
        picks = np.where(mask.any(axis=1), picks, -1)
    return picks


def plan(estimates: Estimates, cost_weight: float, mask: np.ndarray | None = None) -> list[str]:
    """For a single prompt: the eligible models, best utility first (the fallback order)."""
    if estimates.n_prompts != 1:
        raise ValueError("plan() takes the estimates of exactly one prompt")
    util = utilities(estimates, cost_weight, mask)[0]
    order = np.argsort(-util, kind="stable")
    return [estimates.models[j] for j in order if np.isfinite(util[j])]


def cost_weight_sweep(estimates: Estimates, n_points: int = 25,
                      max_prompts: int = 2000, seed: int = 0) -> np.ndarray:
    """``n_points`` cost weights from the cheapest operating point down to 0 (best quality).

    Points sit at quantiles of the per-prompt break-even weights (where a dearer, better
    model starts to beat a cheaper one), so they fall where decisions change rather than
    evenly on an arbitrary scale. A sample of prompts keeps this cheap on big batches.
    """
    if n_points < 2:
        raise ValueError("a sweep needs at least 2 points")
    rows = np.arange(estimates.n_prompts)
    if len(rows) > max_prompts:
        rows = np.random.default_rng(seed).choice(rows, max_prompts, replace=False)
    q, c = estimates.quality[rows], estimates.cost[rows]
    dq = q[:, :, None] - q[:, None, :]
    dc = c[:, :, None] - c[:, None, :]
    valid = (dq > 0) & (dc > 0)
    breaks = dq[valid] / dc[valid]
    if breaks.size == 0:
        return np.linspace(1.0, 0.0, n_points)
    top = float(breaks.max()) * 1.01
    inner = np.quantile(breaks, np.linspace(1.0, 0.0, n_points)[1:-1])
    grid = np.concatenate([[top], inner, [0.0]])
    # Ties among quantiles (many equal break-evens) would shrink the sweep: space them out.
    for i in range(1, len(grid) - 1):
        if grid[i] >= grid[i - 1]:
            grid[i] = grid[i - 1] * 0.97
    return np.maximum(grid, 0.0)


def _outcome(estimates: Estimates, cost_weight: float, quality: np.ndarray, cost: np.ndarray,
             mask: np.ndarray | None) -> tuple[float, float, np.ndarray]:
    picks = choose(estimates, cost_weight, mask)
    rows = np.arange(len(picks))
    return float(quality[rows, picks].mean()), float(cost[rows, picks].mean()), picks


def calibrate_cost_weight(
    estimates: Estimates,
    *,
    target_cost: float | None = None,
    target_quality: float | None = None,
    strong_share: float | None = None,
    observed_quality: np.ndarray | None = None,
    observed_cost: np.ndarray | None = None,
    n_points: int = 200,
    mask: np.ndarray | None = None,
) -> float:
    """Pick w on a calibration set for exactly one target.

    * ``target_cost``: the highest-quality w whose mean cost stays within the target;
    * ``target_quality``: the cheapest w whose mean quality reaches the target;
    * ``strong_share`` (two-model pools): the highest-quality w that sends at most that share
      of prompts to the stronger model.

    Outcomes are the observed ones where given (a labelled calibration set), else predicted.
    """
    targets = [t is not None for t in (target_cost, target_quality, strong_share)]
    if sum(targets) != 1:
        raise ValueError("give exactly one of target_cost, target_quality, strong_share")
    quality = estimates.quality if observed_quality is None else observed_quality
    cost = estimates.cost if observed_cost is None else observed_cost
    sweep = cost_weight_sweep(estimates, n_points)  # from cheapest to best quality
    if strong_share is not None:
        if len(estimates.models) != 2:
            raise ValueError("strong_share calibration needs a two-model pool")
        strong = int(np.argmax(quality.mean(axis=0)))
    best = sweep[0]
    for w in sweep:
        mean_q, mean_c, picks = _outcome(estimates, float(w), quality, cost, mask)
        if target_quality is not None and mean_q >= target_quality:
            return float(w)
        if target_cost is not None:
            if mean_c > target_cost:
                return float(best)
            best = w
        if strong_share is not None:
            if float(np.mean(picks == strong)) > strong_share:
                return float(best)
            best = w
    if target_quality is not None:
        return 0.0
    return float(best)
