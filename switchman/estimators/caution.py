"""Out-of-fold choices made with their uncertainty: never worse than the best single model.

On a small table (a user's few hundred prompts) the out-of-fold scores of the ways to
combine the families differ by less than their noise, and the one that looks best often
routes worse on new prompts than calling the best model: it chases per-prompt differences
the data cannot support. Two rules keep the stacked default honest there:

* **One standard error.** Among candidates whose out-of-fold AIQ is within one bootstrap
  standard error (over training prompts, paired) of the best one, the one that keeps the
  least per-prompt deviation from each model's mean quality is chosen; the per-model prior
  keeps none, and its curve is the single models' own.
* **The top point is earned.** At cost weight 0 the router picks each prompt's highest
  estimate. Unless those picks beat always calling the model with the best mean quality
  by more than one standard error out of fold, that model's estimate is lifted to at least
  every other model's on every prompt, so the top operating point is that model while the
  cheaper operating points still route per prompt.

Where data is plentiful the standard errors are small and both rules leave the choice
that routes best out of fold in place. A third rule is about serving cost, not caution:

* **Least work.** Of the kept candidate and those that run a strict subset of its
  families, keep no more deviation and score at least as well out of fold, the one
  running the fewest families is served: a blend that routes no better than one of its
  parts costs every request every family's work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from switchman import policy
from switchman.estimates import Estimates
from switchman.eval import metrics
from switchman.eval.sweep import sweep_picks

#: How far the lifted model's estimate is put above the best other one: more than the
#: policy's tie-break (1e-6 x the call's dollars) for calls under a dollar, and too little
#: to change any cost trade-off.
_LIFT = 1e-6
#: The margin of both rules, in standard errors.
STANDARD_ERRORS = 1.0
#: The margin by which the best candidate must beat the per-model prior before any
#: per-prompt routing is trusted: wider, because the best is the maximum of some sixty
#: noisy tries (candidates x cost predictors), and the maximum of that many draws of pure
#: noise lies about two standard errors above their mean.
SIGNAL_STANDARD_ERRORS = 2.0


@dataclass(frozen=True)
class Trial:
    """One candidate's out-of-fold routing: its score, the cost predictor it was scored
    with (an index into the router's), whether its top point needed the lift, its sweep's
    picks (n_points, n_prompts), the share of per-prompt deviation it keeps and the
    families it needs at serving time."""

    score: float
    decision: int
    lifted: bool
    picks: np.ndarray
    share: float
    bases: frozenset[int] = frozenset()  # the families it runs (indices into the bases)


def lift_top(predicted: np.ndarray, top: int) -> np.ndarray:
    """``predicted`` with column ``top`` raised to at least every other column, per prompt.

    Only that model's column changes, so excluding it (``route --models``, a request's
    ``allowed_models``) leaves the other models' ranking exactly as estimated.
    """
    if predicted.shape[1] < 2:
        return predicted
    lifted = predicted.copy()
    lifted[:, top] = -np.inf  # the others' maximum, without np.delete's copy and checks
    others = np.maximum.reduce(lifted, axis=1)
    lifted[:, top] = np.maximum(predicted[:, top], np.minimum(others + _LIFT, 1.0))
    return lifted


def top_is_earned(
    predicted: np.ndarray, decision_cost: np.ndarray, observed: np.ndarray, top: int
) -> bool:
    """Whether cost-weight-0 picks on ``predicted`` beat always calling model ``top`` on
    ``observed`` (out-of-fold) outcomes by more than one standard error of the mean
    per-prompt difference."""
    picks = policy.choose(
        Estimates(tuple(range(predicted.shape[1])), predicted, decision_cost), 0.0
    )
    gain = observed[np.arange(len(picks)), picks] - observed[:, top]
    if len(gain) < 2:
        return False
    return bool(gain.mean() > STANDARD_ERRORS * gain.std(ddof=1) / np.sqrt(len(gain)))


def route_picks(predicted: np.ndarray, decision_cost: np.ndarray, n_points: int) -> np.ndarray:
    """The policy's sweep picks (n_points, n_prompts) on estimates ``predicted``."""
    estimates = Estimates(tuple(range(predicted.shape[1])), predicted, decision_cost)
    return sweep_picks(estimates, n_points)[1]


def bootstrap_aiq(
    picks: np.ndarray, observed: np.ndarray, cost: np.ndarray, resamples: np.ndarray
) -> np.ndarray:
    """AIQ of a sweep's picks on each bootstrap resample of the prompts.

    ``resamples`` (n_resamples, n_prompts) counts how often each prompt is drawn; every
    operating point of every resample comes from one product, so 200 resamples cost
    about as much as scoring the sweep once.
    """
    rows = np.arange(picks.shape[1])
    weights = resamples / resamples.sum(axis=1, keepdims=True)
    point_quality = weights @ observed[rows, picks].T  # (n_resamples, n_points)
    point_cost = weights @ cost[rows, picks].T
    max_cost = (weights @ cost).max(axis=1)
    return np.array(
        [
            metrics.aiq(np.column_stack([c, q]), float(top))
            for c, q, top in zip(point_cost, point_quality, max_cost, strict=True)
        ]
    )


def resample_counts(n_prompts: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_prompts) draw counts of a seeded bootstrap of the prompts."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_prompts, size=(n_resamples, n_prompts))
    return np.stack([np.bincount(row, minlength=n_prompts) for row in draws]).astype(float)


def one_standard_error(
    trials: dict[str, Trial], observed: np.ndarray, cost: np.ndarray, resamples: np.ndarray
) -> str:
    """The candidate keeping the least per-prompt deviation among those whose score is
    within one paired bootstrap standard error of the best score (ties: the higher score);
    the simplest candidate outright (the prior) unless the best beats it by
    ``SIGNAL_STANDARD_ERRORS``.
    """
    best = max(trials, key=lambda name: trials[name].score)
    best_boot = bootstrap_aiq(trials[best].picks, observed, cost, resamples)
    simplest = min(trials, key=lambda name: (trials[name].share, -trials[name].score))
    close = [best]
    for name, trial in trials.items():
        if name == best or trial.share >= trials[best].share:
            continue
        spread = (best_boot - bootstrap_aiq(trial.picks, observed, cost, resamples)).std(ddof=1)
        lead = trials[best].score - trial.score
        if name == simplest and lead <= SIGNAL_STANDARD_ERRORS * spread:
            return name
        if lead <= STANDARD_ERRORS * spread:
            close.append(name)
    chosen = min(close, key=lambda name: (trials[name].share, -trials[name].score))
    return leanest(chosen, trials)


def leanest(chosen: str, trials: dict[str, Trial]) -> str:
    """``chosen``, or the candidate running the fewest families of those that run a strict
    subset of its families, keep no more per-prompt deviation and score at least as well
    out of fold (ties: less deviation, then the higher score).

    One standard error can keep a blend of every family over one of its parts that
    routes better, because their standard errors differ; the blend costs each routed
    request every family's work (on routerbench the neighbour search over the training
    prompts is most of a prompt's estimate). Only a candidate that gives up nothing out
    of fold replaces it: allowing a standard error below it, on a 200-prompt llmrouter
    table, served a cluster mixture whose top point fell 0.03 below the best model.
    """
    kept = trials[chosen]
    leaner = [name for name, trial in trials.items()
              if trial.bases < kept.bases and trial.share <= kept.share
              and trial.score >= kept.score]
    if not leaner:
        return chosen
    return min(leaner, key=lambda name: (len(trials[name].bases), trials[name].share,
                                         -trials[name].score))
