"""Turn estimates plus a request's constraints into a decision: utility = quality - w * cost.

``w`` (the cost weight, quality points per dollar) is the only knob: 0 buys the best expected
quality, a large value the cheapest model. Sweeps, calibration and per-request plans all go
through the same ``utilities`` so that what is evaluated offline is what the gateway does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from switchman.estimates import Estimates

# Breaks exact quality ties toward the cheaper model without moving any real trade-off.
_TIE_BREAK_WEIGHT = 1e-6
#: Relative cost difference below which two models cost the same (see ``_break_evens``).
_COST_ROUNDING = 1e-9


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

    def model_reason(self, name: str) -> str | None:
        """Why model ``name`` is excluded whatever the prompt, or None."""
        if self.allowed_models is not None and name not in self.allowed_models:
            return "not in allowed_models"
        if name in self.excluded_models:
            return "in excluded_models"
        return None

    def cost_reason(self, cost: float) -> str | None:
        """Why a call estimated at ``cost`` dollars is excluded, or None."""
        if self.max_cost_usd is not None and cost > self.max_cost_usd:
            return f"estimated cost ${cost:.6f} > max_cost_usd ${self.max_cost_usd}"
        return None


def eligibility(estimates: Estimates, constraints: Constraints | None = None,
                extra_mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean (n_prompts, n_models): which models each prompt may go to.

    The rules are :meth:`Constraints.model_reason` and :meth:`Constraints.cost_reason`
    (the gateway asks those for one prompt, to explain each exclusion). ``extra_mask``
    carries what only the caller knows (context window, required features).
    """
    mask = np.ones(estimates.quality.shape, dtype=bool)
    if constraints is not None:
        mask &= np.array([constraints.model_reason(name) is None
                          for name in estimates.models], dtype=bool)[None, :]
        if constraints.max_cost_usd is not None:  # cost_reason, for every prompt at once
            mask &= estimates.cost <= constraints.max_cost_usd
    if extra_mask is not None:
        mask &= extra_mask
    return mask


def utilities(estimates: Estimates, cost_weight: float,
              mask: np.ndarray | None = None) -> np.ndarray:
    """quality - w * cost per prompt and model; ineligible models get -inf."""
    if not cost_weight >= 0:  # also rejects NaN
        raise ValueError(f"cost_weight must be a number >= 0, got {cost_weight}")
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
    order = np.argsort(-util, kind="stable").tolist()
    values = util.tolist()  # Python numbers: numpy's per-element access costs ~1 us each
    return [estimates.models[j] for j in order if math.isfinite(values[j])]


def cost_weight_sweep(estimates: Estimates, n_points: int = 25,
                      max_prompts: int = 2000, seed: int = 0) -> np.ndarray:
    """``n_points`` cost weights from the cheapest operating point down to 0 (best quality).

    The points are spread evenly in *expected spend*, not in w: half on a linear and half
    on a log scale of predicted mean cost between the cheapest and the best-quality
    operating point, each found by bisection on w. Quantiles of w itself crowd where
    dominated models break even and leave gaps where the frontier bends, which is where
    a user picks an operating point. A sample of prompts keeps the search cheap.
    """
    if n_points < 2:
        raise ValueError("a sweep needs at least 2 points")
    top = _cheapest_weight(estimates, max_prompts)
    if top == 0.0:
        return np.linspace(1.0, 0.0, n_points)
    sample = estimates
    if estimates.n_prompts > max_prompts:
        rows = np.random.default_rng(seed).choice(estimates.n_prompts, max_prompts, replace=False)
        sample = estimates.rows(np.sort(rows))
    low, high = _mean_cost(sample, top), _mean_cost(sample, 0.0)
    n_linear = (n_points - 2) // 2
    targets = np.concatenate([
        np.linspace(low, high, n_linear + 2)[1:-1],
        np.geomspace(max(low, 1e-300), max(high, 1e-300), n_points - n_linear)[1:-1],
    ])
    inner = [_weight_for_cost(sample, float(t), top) for t in np.sort(targets)]
    grid = np.concatenate([[top], inner, [0.0]])
    # Equal weights (a flat stretch of the spend curve) would shrink the sweep: space them.
    for i in range(1, len(grid) - 1):
        if grid[i] >= grid[i - 1]:
            grid[i] = grid[i - 1] * 0.97
    return np.maximum(grid, 0.0)


def _cheapest_weight(estimates: Estimates, chunk: int) -> float:
    """A weight at which every prompt takes its cheapest model (0 if nothing trades off)."""
    top = max(
        float(_break_evens(estimates.quality[i : i + chunk], estimates.cost[i : i + chunk])
              .max(initial=0.0))
        for i in range(0, estimates.n_prompts, chunk)
    )
    return top * 1.01


def _mean_cost(estimates: Estimates, cost_weight: float) -> float:
    picks = choose(estimates, cost_weight)
    return float(estimates.cost[np.arange(len(picks)), picks].mean())


def _weight_for_cost(estimates: Estimates, target: float, top: float) -> float:
    """The smallest w whose predicted mean cost stays within ``target`` (bisection on log w)."""
    lo, hi = np.log(top) - 30.0, np.log(top)  # spend is non-increasing in w
    for _ in range(40):
        mid = (lo + hi) / 2
        if _mean_cost(estimates, float(np.exp(mid))) > target:
            lo = mid
        else:
            hi = mid
    return float(np.exp(hi))


def _break_evens(quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Per prompt and pair of models, the weight at which the dearer, better one stops winning.

    Two models whose costs differ only by rounding (equal prices, costs computed along
    different paths: a trained model and one added by profile, 1e-19 USD apart) do not
    trade off: their break-even of 1e19 would set the sweep's top weight so high that its
    40-step search never reaches the weights where the models that do trade off break
    even, and every point but the last would be the cheapest one.
    """
    dq = quality[:, :, None] - quality[:, None, :]
    dc = cost[:, :, None] - cost[:, None, :]
    scale = np.maximum(np.abs(cost[:, :, None]), np.abs(cost[:, None, :]))
    valid = (dq > 0) & (dc > _COST_ROUNDING * scale)
    return dq[valid] / dc[valid]


def _outcome(estimates: Estimates, cost_weight: float, quality: np.ndarray, cost: np.ndarray,
             mask: np.ndarray | None) -> tuple[float, float, np.ndarray]:
    picks = choose(estimates, cost_weight, mask)
    routed = np.flatnonzero(picks >= 0)  # prompts no model may take have no outcome
    if routed.size == 0:
        return float("nan"), float("nan"), picks
    return (float(quality[routed, picks[routed]].mean()),
            float(cost[routed, picks[routed]].mean()), picks)


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
