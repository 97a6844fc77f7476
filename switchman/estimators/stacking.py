"""The default estimator: the best way to combine the other families, chosen out of fold.

Each base estimator is fitted on k-1 folds and predicts the held-out fold. From those
out-of-fold predictions come the candidates (a per-model non-negative least-squares blend,
a plain average, each base alone), and the one that routes best on prompts the bases never
saw is kept. So the default learns how far to trust each family on this data and is never
worse, out of fold, than the best single family.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from switchman.estimates import Estimates
from switchman.estimators.base import QualityEstimator, RoutingCosts, sub_state
from switchman.eval import metrics
from switchman.eval.sweep import sweep_picks, sweep_points
from switchman.features import Features
from switchman.progress import stage

log = logging.getLogger(__name__)


def routing_score(predicted: np.ndarray, cost: np.ndarray, observed: np.ndarray,
                  n_points: int = 25, decision_cost: np.ndarray | None = None) -> float:
    """How well ``predicted`` quality routes, scored on ``observed`` outcomes and ``cost``.

    The AIQ of the policy's sweep; a sweep whose best point falls short of the best single
    model's quality loses a full point, because a router that cannot match the best model
    at any price fails the promise users buy it for, whatever its area. The policy sees
    ``decision_cost`` (predicted costs) when given, else the observed ``cost``.
    """
    seen_cost = cost if decision_cost is None else decision_cost
    _, picks = sweep_picks(Estimates(tuple(range(predicted.shape[1])), predicted, seen_cost),
                           n_points)
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
        """Blend the bases; with ``costs``, keep whichever candidate routes best out of fold.

        Candidates are the least-squares blend, the plain average of the non-prior bases, and
        each base alone. Least squares minimises squared error, but what matters is how well
        the predictions *rank* models per prompt across the whole cost range, so the choice
        among candidates is made on the routing quality of their out-of-fold predictions
        (see ``routing_score``), with decisions on each of the router's predicted costs and
        a candidate credited with the best of them; ``cost_choice_`` records which, and the
        router keeps that cost predictor.
        """
        oof = self.out_of_fold(features, quality)  # (n_bases, n, m)
        candidates = self._candidates(oof, quality)
        self.cost_choice_ = None
        if costs is None:
            self.selected_ = "blend"
        else:
            by_decision = self._score_candidates(oof, candidates, quality, costs)
            scores = {name: max(s) for name, s in by_decision.items()}
            self.selected_ = max(scores, key=scores.__getitem__)
            if costs.predicted:
                self.cost_choice_ = int(np.argmax(by_decision[self.selected_]))  # ties: first
            log.info("stacking: out-of-fold routing score of each way to combine the "
                     "families (AIQ of its quality-cost curve on prompts the families did "
                     "not see; higher is better, and 1 is taken off a curve that never "
                     "reaches the best single model's quality): %s; kept %r",
                     {k: round(v, 4) for k, v in scores.items()}, self.selected_)
        self.weights_, self.intercept_ = candidates[self.selected_]
        self.oof_quality_ = self._blend(oof, self.weights_, self.intercept_)
        used = self._used()
        with stage("final fit", len(used), unit="family") as bar:
            for b in used:
                bar.set_postfix_str(f"{b}:{self.bases[b].kind}")
                self.bases[b].fit(features, quality, costs)
                bar.update(1)
        return self

    def _score_candidates(self, oof: np.ndarray,
                          candidates: dict[str, tuple[np.ndarray, np.ndarray]],
                          quality: np.ndarray, costs: RoutingCosts) -> dict[str, list[float]]:
        """Each candidate's out-of-fold routing score with each of the router's cost
        predictors (the observed costs when it has none)."""
        decisions = costs.predicted or (costs.observed,)
        scores: dict[str, list[float]] = {}
        with stage("choosing the blend", len(candidates) * len(decisions),
                   unit="sweep") as bar:
            for name, wb in candidates.items():
                blended = self._blend(oof, *wb)
                scores[name] = []
                for seen in decisions:
                    scores[name].append(routing_score(blended, costs.observed, quality,
                                                      decision_cost=seen))
                    bar.update(1)
        return scores

    def _used(self) -> np.ndarray:
        """Bases the selected combination gives weight; the others are neither fitted nor run."""
        return np.flatnonzero(np.any(self.weights_ != 0, axis=0))

    def _candidates(self, oof: np.ndarray,
                    quality: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from scipy.optimize import nnls  # fitting only: serving needs numpy alone

        n_bases, n_models = len(self.bases), quality.shape[1]
        weights, intercept = np.zeros((n_models, n_bases)), np.zeros(n_models)
        for j in range(n_models):
            x = oof[:, :, j].T
            x_mean, y_mean = x.mean(axis=0), quality[:, j].mean()
            weights[j], _ = nnls(x - x_mean, quality[:, j] - y_mean)
            intercept[j] = y_mean - x_mean @ weights[j]
        candidates = {"blend": (weights, intercept)}
        local = [b for b, base in enumerate(self.bases) if base.kind != "prior"]
        if local:
            average = np.zeros((n_models, n_bases))
            average[:, local] = 1.0 / len(local)
            candidates["average"] = (average, np.zeros(n_models))
        for b, base in enumerate(self.bases):
            one = np.zeros((n_models, n_bases))
            one[:, b] = 1.0
            candidates[f"{b}:{base.kind}"] = (one, np.zeros(n_models))
        return candidates

    def out_of_fold(self, features: Features, quality: np.ndarray) -> np.ndarray:
        """Each base's predictions for every training prompt, from a fit that excluded it."""
        from sklearn.model_selection import KFold  # fitting only: serving needs numpy alone

        oof = np.zeros((len(self.bases), *quality.shape))
        folds = KFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        splits = list(folds.split(features.embeddings))
        for b, base in enumerate(self.bases):  # family by family: one progress bar each
            with stage(f"out-of-fold {b}:{base.kind}", len(splits), unit="fold") as bar:
                for train_idx, held_idx in splits:
                    base.fit(features.rows(train_idx), quality[train_idx])
                    oof[b, held_idx] = base.predict(features.rows(held_idx))
                    bar.update(1)
        return oof

    @staticmethod
    def _blend(predictions: np.ndarray, weights: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        blended = np.einsum("bnm,mb->nm", predictions, weights) + intercept
        return np.clip(blended, 0.0, 1.0)

    def predict(self, features: Features) -> np.ndarray:
        predictions = np.zeros((len(self.bases), len(features), self.weights_.shape[0]))
        for b in self._used():
            predictions[b] = self.bases[b].predict(features)
        return self._blend(predictions, self.weights_, self.intercept_)

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"weights": self.weights_, "intercept": self.intercept_}
        for b in self._used():
            for key, value in self.bases[b].state_arrays().items():
                arrays[f"base{b}.{key}"] = value
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> StackingEstimator:
        self.weights_ = arrays["weights"]
        self.intercept_ = arrays["intercept"]
        for b in self._used():
            self.bases[b].load_state(sub_state(arrays, f"base{b}."))
        return self
