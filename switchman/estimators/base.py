"""The estimator contract, in scikit-learn's style.

Hyper-parameters live in ``__init__``; ``fit`` sets learned state in attributes ending in
``_``; ``predict`` is pure. Estimators see features (``switchman.features``), not text: the
router owns the encoder, so one encoder run serves every estimator and a saved router can be
reloaded without refit. State is exported as JSON-able parameters plus named numpy arrays,
so a saved router holds no pickled code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from switchman.features import Features


@dataclass(frozen=True)
class RoutingCosts:
    """Dollars, for estimators that select themselves by how well they route out of fold.

    ``observed`` (n, m) is what each model's answer cost: what a route is charged.
    ``predicted`` holds the router's cost predictions for the same prompts, one array per
    cost predictor it may keep. The policy decides on predicted costs, never observed ones,
    and which quality estimate routes best depends on the costs it is traded against: on
    mmlupro, neighbour residuals looked best out of fold when decisions saw the true
    per-prompt costs, yet lost ~0.008 AIQ with the predicted costs that serving sees.
    Empty ``predicted``: decisions on the observed costs.
    """

    observed: np.ndarray
    predicted: tuple[np.ndarray, ...] = ()


class QualityEstimator(ABC):
    """Predicts each model's expected quality in [0, 1] for each prompt."""

    #: Registry key; also what ``switchman train --router NAME`` accepts.
    kind: ClassVar[str]
    #: Set by ``fit`` in estimators that predict their training prompts out of fold (the
    #: stacked default): those predictions, (n_prompts, n_models). The router calibrates
    #: its default cost weight on them rather than on flattering in-sample predictions.
    oof_quality_: np.ndarray | None = None
    #: Set by ``fit`` in estimators that select themselves by routing quality given
    #: ``costs.predicted``: the index of the cost predictor their predictions route best
    #: with, which the router keeps. None: no preference, the router keeps the first
    #: (per-prompt) one.
    cost_choice_: int | None = None
    #: Set by ``fit`` in estimators that guard their top operating point (the stacked
    #: default, see ``caution``): the model whose estimate is lifted to at least every
    #: other's, because per-prompt picks at cost weight 0 did not beat it out of fold;
    #: -1 for none.
    top_model_: int = -1

    @abstractmethod
    def fit(self, features: Features, quality: np.ndarray,
            costs: RoutingCosts | None = None) -> QualityEstimator:
        """Learn from ``quality`` (n_prompts, n_models) observed on ``features``.

        ``costs`` is there for estimators that select themselves by routing quality on
        held-out folds; the others ignore it.
        """

    @abstractmethod
    def predict(self, features: Features) -> np.ndarray:
        """Expected quality (n_prompts, n_models), clipped to [0, 1]."""

    def reads_tasks(self) -> bool:
        """Whether fitting and predicting use task labels and posteriors (``task_ids``,
        ``task_probs``): the router fits its task classifier only for estimators that do."""
        return False

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters, exactly the ``__init__`` arguments."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    @abstractmethod
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Learned state as named arrays (what ``fit`` set)."""

    @abstractmethod
    def load_state(self, arrays: dict[str, np.ndarray]) -> QualityEstimator:
        """Restore learned state exported by ``state_arrays``."""


def sub_state(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays saved under ``prefix`` (a nested estimator's state), prefix removed."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def clip_unit(values: np.ndarray) -> np.ndarray:
    """``np.clip(values, 0.0, 1.0)``, the same floats (NaN stays NaN), as two ufunc calls:
    np.clip's Python wrapper costs ~4 us, and a routed prompt clips five times."""
    return np.minimum(np.maximum(values, 0.0), 1.0)


def shrink(total: np.ndarray, weight: np.ndarray, prior: np.ndarray, strength: float) -> np.ndarray:
    """Weighted mean pulled toward ``prior``: (sum w q + s prior) / (sum w + s).

    Small groups (few neighbours, a tiny cluster) then say little beyond the prior, which is
    what keeps local estimators from chasing noise in binary outcomes.
    """
    return (total + strength * prior) / (weight + strength)
