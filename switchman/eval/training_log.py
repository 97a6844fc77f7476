"""What a training run's figures mean, said in words for the training log.

A user reading ``switchman train``'s log sees an AIQ and a cost weight; without the
sentence around them, neither says whether the router is any good or what ``serve`` will
do with it. The figures are computed on the training prompts from the estimator's
out-of-fold predictions where it has them (prompts it did not see), else from in-sample
ones, and the text says which.
"""

from __future__ import annotations

import numpy as np

from switchman import policy
from switchman.estimates import Estimates
from switchman.eval import metrics
from switchman.eval.sweep import sweep_picks, sweep_points


def describe_fit(
    estimates: Estimates,
    quality: np.ndarray,
    cost: np.ndarray,
    cost_weight: float,
    out_of_fold: bool,
    n_points: int = 25,
) -> str:
    """Sentences on how ``estimates`` (the training prompts' predictions) route.

    ``quality`` and ``cost`` are the observed outcomes (n, m); ``cost_weight`` is the
    router's default, the trade-off ``serve`` uses unless the configuration sets one.
    """
    max_cost = float(cost.mean(axis=0).max())
    _, picks = sweep_picks(estimates, n_points)
    router_aiq = metrics.aiq(sweep_points(quality, cost, picks), max_cost)
    singles = metrics.single_model_points(quality, cost, estimates.models)
    singles_aiq = metrics.aiq(list(singles.values()), max_cost)
    best, best_cost, best_quality = metrics.best_single(quality, cost, estimates.models)
    serve_cost, serve_quality = metrics.operating_point(
        quality, cost, policy.choose(estimates, cost_weight)
    )
    seen = (
        "on prompts the estimator did not see (out of fold)"
        if out_of_fold
        else "on the training prompts themselves (in-sample, so flattering: this family "
        "has no out-of-fold predictions)"
    )
    share = f", {serve_cost / best_cost:.0%} of {best}'s cost" if best_cost > 0 else ""
    return (
        f"routing AIQ {router_aiq:.4f}: area under the quality-cost curve {seen}, "
        f"as a share of the most expensive model's cost; higher is better, and "
        f"switching between single models gets {singles_aiq:.4f}. Default cost weight "
        f"{cost_weight:.4g}: the cheapest trade-off whose quality matches the best "
        f"single model ({best}, {best_quality:.4f}); serve uses it unless the "
        f"configuration sets cost_weight. There the router reached quality "
        f"{serve_quality:.4f} at ${serve_cost:.3g} per prompt{share}."
    )
