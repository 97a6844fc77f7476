"""The default estimator: the best way to combine the other families, chosen out of fold.

Each base estimator is fitted on k-1 folds and predicts the held-out fold. From those
out-of-fold predictions come the candidates (a per-model non-negative least-squares blend,
a plain average, each base alone, and each of these shrunk part of the way toward the
per-model prior), and the one that routes best on prompts the bases never saw is kept,
with the caution of ``switchman.estimators.caution``: a simpler candidate within one
standard error wins (or one running fewer of its families that scores as well),
and the top operating point is the best model unless per-prompt picks beat it out of
fold. So the default learns how far to trust each family on this
data, and on a table too small for per-prompt routing it falls back to the single models.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from switchman.estimators.base import QualityEstimator, RoutingCosts, clip_unit, sub_state
from switchman.estimators.caution import (
    Trial,
    lift_top,
    one_standard_error,
    resample_counts,
    route_picks,
    top_is_earned,
)
from switchman.eval import metrics
from switchman.eval.sweep import sweep_points
from switchman.features import Features
from switchman.progress import stage

log = logging.getLogger(__name__)

#: Shares of a combination's per-prompt deviation from each model's mean quality that its
#: shrunk candidates keep (0 would be the per-model prior, which is a candidate of its own).
SHRINK_SHARES = (0.25, 0.5, 0.75)
#: Bootstrap resamples of the training prompts behind the one-standard-error rule.
N_RESAMPLES = 200
#: Operating points of an out-of-fold sweep.
N_POINTS = 25


class Combination(NamedTuple):
    """Per-model weights over the bases (n_models, n_bases), intercepts (n_models,), and
    the share of per-prompt deviation from the prior it keeps (0 prior, 1 unshrunk)."""

    weights: np.ndarray
    intercept: np.ndarray
    share: float


def routing_score(predicted: np.ndarray, cost: np.ndarray, observed: np.ndarray,
                  n_points: int = N_POINTS, decision_cost: np.ndarray | None = None) -> float:
    """How well ``predicted`` quality routes, scored on ``observed`` outcomes and ``cost``.

    The policy sees ``decision_cost`` (predicted costs) when given, else the observed
    ``cost``; see ``sweep_score``.
    """
    seen_cost = cost if decision_cost is None else decision_cost
    return sweep_score(route_picks(predicted, seen_cost, n_points), observed, cost)


def sweep_score(picks: np.ndarray, observed: np.ndarray, cost: np.ndarray) -> float:
    """The AIQ of a sweep's picks (n_points, n_prompts) on observed outcomes; a sweep whose
    best point falls short of the best single model's quality loses a full point, because
    a router that cannot match the best model at any price fails the promise users buy it
    for, whatever its area."""
    points = sweep_points(observed, cost, picks)
    score = metrics.aiq(points, float(cost.mean(axis=0).max()))
    reaches_best = metrics.max_quality(points) >= observed.mean(axis=0).max() - 1e-12
    return score if reaches_best else score - 1.0


class StackingEstimator(QualityEstimator):
    kind = "stacking"

    def __init__(self, bases: list[QualityEstimator], n_folds: int = 5, seed: int = 0) -> None:
        self.bases = bases
        self.n_folds = n_folds
        self.seed = seed

    def reads_tasks(self) -> bool:
        return any(base.reads_tasks() for base in self.bases)

    def get_params(self) -> dict[str, Any]:
        return {
            "bases": [{"kind": b.kind, "params": b.get_params()} for b in self.bases],
            "n_folds": self.n_folds,
            "seed": self.seed,
        }

    def fit(self, features: Features, quality: np.ndarray,
            costs: RoutingCosts | None = None) -> StackingEstimator:
        """Blend the bases; with ``costs``, keep the candidate that routes best out of fold.

        Least squares minimises squared error, but what matters is how well the predictions
        *rank* models per prompt across the whole cost range, so the choice among
        candidates is made on the routing quality of their out-of-fold predictions (see
        ``sweep_score``), with decisions on each of the router's predicted costs and a
        candidate credited with the best of them; ``cost_choice_`` records which, and the
        router keeps that cost predictor. The choice is cautious (``caution``): the least
        shrunk candidate must beat the others by a standard error, a candidate running
        fewer of its families that scores as well is served instead, and a top point
        that does not beat the best model is replaced by it (``top_model_``).
        """
        oof = self.out_of_fold(features, quality)  # (n_bases, n, m)
        candidates = self._candidates(oof, quality)
        self.cost_choice_ = None
        self.top_model_ = -1
        if costs is None:
            self.selected_ = "blend"
        else:
            trials = self._score_candidates(oof, candidates, quality, costs)
            resamples = resample_counts(len(quality), N_RESAMPLES, self.seed)
            self.selected_ = one_standard_error(trials, quality, costs.observed, resamples)
            chosen = trials[self.selected_]
            if costs.predicted:
                self.cost_choice_ = chosen.decision
            if chosen.lifted:
                self.top_model_ = self._best_model(quality, costs.observed)
            log.info("stacking: out-of-fold routing score of each way to combine the "
                     "families (AIQ of its quality-cost curve on prompts the families did "
                     "not see; higher is better, and 1 is taken off a curve that never "
                     "reaches the best single model's quality): %s; kept %r, the simplest "
                     "within one standard error of the best (or one running fewer of its "
                     "families that scores as well)%s",
                     {k: round(t.score, 4) for k, t in trials.items()}, self.selected_,
                     ", its top point lifted to the best model" if chosen.lifted else "")
        self.weights_, self.intercept_, _ = candidates[self.selected_]
        self.used_ = self._weighted(self.weights_)
        self.oof_quality_ = self._lifted(self._blend(oof, self.weights_, self.intercept_))
        with stage("final fit", len(self.used_), unit="family") as bar:
            for b in self.used_:
                bar.set_postfix_str(f"{b}:{self.bases[b].kind}")
                self.bases[b].fit(features, quality, costs)
                bar.update(1)
        return self

    @staticmethod
    def _best_model(quality: np.ndarray, cost: np.ndarray) -> int:
        """The model of the best mean quality on the training prompts (ties: cheaper)."""
        name, _, _ = metrics.best_single(quality, cost, [str(j) for j in range(quality.shape[1])])
        return int(name)

    def _score_candidates(self, oof: np.ndarray, candidates: dict[str, Combination],
                          quality: np.ndarray, costs: RoutingCosts) -> dict[str, Trial]:
        """Each candidate's out-of-fold routing with the cost predictor it routes best
        with (the observed costs when the router has none), its top point lifted to the
        best model where per-prompt picks did not earn theirs."""
        decisions = costs.predicted or (costs.observed,)
        top = self._best_model(quality, costs.observed)
        trials: dict[str, Trial] = {}
        with stage("choosing the blend", len(candidates) * len(decisions),
                   unit="sweep") as bar:
            for name, (weights, intercept, share) in candidates.items():
                blended = self._blend(oof, weights, intercept)
                for d, seen in enumerate(decisions):
                    lifted = not top_is_earned(blended, seen, quality, top)
                    picks = route_picks(lift_top(blended, top) if lifted else blended, seen,
                                        N_POINTS)
                    score = sweep_score(picks, quality, costs.observed)
                    if name not in trials or score > trials[name].score:  # ties: first
                        trials[name] = Trial(score, d, lifted, picks, share,
                                             frozenset(self._weighted(weights)))
                    bar.update(1)
        return trials

    @staticmethod
    def _weighted(weights: np.ndarray) -> list[int]:
        """Bases that a combination's ``weights`` (n_models, n_bases) give weight. Those of
        the selected one are ``used_``; the others are neither fitted nor run."""
        return np.flatnonzero(np.any(weights != 0, axis=0)).tolist()

    def _candidates(self, oof: np.ndarray, quality: np.ndarray) -> dict[str, Combination]:
        """The least-squares blend, the plain average of the non-prior bases, each base
        alone, and (with a prior base) each of those shrunk toward the prior: a candidate
        ``name@s`` keeps share ``s`` of the per-prompt deviation of ``name``."""
        from scipy.optimize import nnls  # fitting only: serving needs numpy alone

        n_bases, n_models = len(self.bases), quality.shape[1]
        weights, intercept = np.zeros((n_models, n_bases)), np.zeros(n_models)
        for j in range(n_models):
            x = oof[:, :, j].T
            x_mean, y_mean = x.mean(axis=0), quality[:, j].mean()
            weights[j], _ = nnls(x - x_mean, quality[:, j] - y_mean)
            intercept[j] = y_mean - x_mean @ weights[j]
        none = np.zeros(n_models)
        candidates = {"blend": Combination(weights, intercept, 1.0)}
        local = [b for b, base in enumerate(self.bases) if base.kind != "prior"]
        if local:
            average = np.zeros((n_models, n_bases))
            average[:, local] = 1.0 / len(local)
            candidates["average"] = Combination(average, none, 1.0)
        priors = [b for b, base in enumerate(self.bases) if base.kind == "prior"]
        for b, base in enumerate(self.bases):
            one = np.zeros((n_models, n_bases))
            one[:, b] = 1.0
            candidates[f"{b}:{base.kind}"] = Combination(one, none, 0.0 if b in priors else 1.0)
        if not priors:
            return candidates
        prior = np.zeros((n_models, n_bases))
        prior[:, priors[0]] = 1.0
        for name, (w, b, share) in list(candidates.items()):
            if share == 1.0:
                for s in SHRINK_SHARES:  # blended linearly: shrinking is a blend with the prior
                    candidates[f"{name}@{s}"] = Combination(s * w + (1 - s) * prior, s * b, s)
        return candidates

    def out_of_fold(self, features: Features, quality: np.ndarray) -> np.ndarray:
        """Each base's predictions for every training prompt, from a fit that excluded it.

        Except the per-model prior's, which are the means of all training prompts: those
        are a handful of numbers, barely flattered by fitting in sample, while their k-fold
        version is pessimistic, since a fold whose answers beat the average lowers the
        estimates it is routed by and all its prompts flip together (on a table with no
        per-prompt signal, 0.03 AIQ below the in-sample prior: three standard errors).
        """
        from sklearn.model_selection import KFold  # fitting only: serving needs numpy alone

        oof = np.zeros((len(self.bases), *quality.shape))
        folds = KFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        splits = list(folds.split(features.embeddings))
        for b, base in enumerate(self.bases):  # family by family: one progress bar each
            if base.kind == "prior":  # in sample: see the docstring
                oof[b] = base.fit(features, quality).predict(features)
                continue
            with stage(f"out-of-fold {b}:{base.kind}", len(splits), unit="fold") as bar:
                for train_idx, held_idx in splits:
                    base.fit(features.rows(train_idx), quality[train_idx])
                    oof[b, held_idx] = base.predict(features.rows(held_idx))
                    bar.update(1)
        return oof

    @classmethod
    def _blend(cls, predictions: np.ndarray, weights: np.ndarray,
               intercept: np.ndarray) -> np.ndarray:
        """Every base's (n_bases, n, m) predictions blended by ``weights``, in [0, 1]."""
        return cls._weighted_sum(predictions, cls._weighted(weights), weights, intercept,
                                 predictions.shape[1])

    @staticmethod
    def _weighted_sum(predictions: np.ndarray | Mapping[int, np.ndarray], used: list[int],
                      weights: np.ndarray, intercept: np.ndarray, n: int) -> np.ndarray:
        """sum_b weights[:, b] x predictions[b] + intercept over the ``used`` bases (those
        with weight) for ``n`` prompts, clipped to [0, 1].

        ``predictions`` are indexed by base: all bases' array or the used bases' (n, m)
        predictions. Summed base by base in order, this is exactly ``einsum("bnm,mb->nm")``
        (a base without weight adds zeros), without a zero-filled array for the unused
        bases or einsum's set-up, which cost more than the sum for one prompt.
        """
        if not used:  # no base has weight: the intercepts alone
            return clip_unit(np.zeros((n, len(intercept))) + intercept)
        blended = predictions[used[0]] * weights[:, used[0]]
        for b in used[1:]:
            blended = blended + predictions[b] * weights[:, b]
        return clip_unit(blended + intercept)

    def _lifted(self, predicted: np.ndarray) -> np.ndarray:
        return predicted if self.top_model_ < 0 else lift_top(predicted, self.top_model_)

    def predict(self, features: Features) -> np.ndarray:
        predictions = {b: self.bases[b].predict(features) for b in self.used_}
        return self._lifted(self._weighted_sum(predictions, self.used_, self.weights_,
                                               self.intercept_, len(features)))

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"weights": self.weights_, "intercept": self.intercept_,
                  "top_model": np.array(self.top_model_)}
        for b in self.used_:
            for key, value in self.bases[b].state_arrays().items():
                arrays[f"base{b}.{key}"] = value
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> StackingEstimator:
        self.weights_ = arrays["weights"]
        self.intercept_ = arrays["intercept"]
        # routers saved before the top-point rule have no top model: none is lifted
        self.top_model_ = int(arrays.get("top_model", -1))
        self.used_ = self._weighted(self.weights_)
        for b in self.used_:
            self.bases[b].load_state(sub_state(arrays, f"base{b}."))
        return self
