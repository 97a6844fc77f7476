"""Router = features (encoder, task classifier) + quality estimator + cost model.

The router predicts; the policy decides. ``estimate`` gives every model's expected quality
and cost for a batch of prompts, and any policy in ``switchman.policy`` turns that into
choices. The task classifier (when the training table labels tasks) runs once per prompt
and its posterior is shared by the estimator and the cost model. A saved router is a
directory with ``router.json`` (format version, names, hyper-parameters) and
``arrays.npz`` (learned state, loaded with ``allow_pickle=False``): no pickled code, so
loading a router never runs anything from disk.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from switchman import policy
from switchman.cost import CostModel
from switchman.data import to_matrices
from switchman.embed import Encoder
from switchman.encoders import default_encoder, encoder_by_name
from switchman.estimates import Estimates
from switchman.estimators import QualityEstimator, estimator_from_params, make_estimator
from switchman.estimators.base import RoutingCosts, sub_state
from switchman.features import Features, featurize, make_features
from switchman.features.task_classifier import TaskClassifier, label_tasks, task_codes

log = logging.getLogger(__name__)

#: 2: one task classifier per router, saved under "tasks."; 3: an array that several parts
#: of the router hold (the neighbour families' training embeddings) is stored once, and
#: ``shared_arrays`` in router.json names the other keys it stands for.
FORMAT_VERSION = 3
_READABLE_VERSIONS = (2, 3)  # a version-2 router is a version-3 one with nothing shared
_CONFIG_FILE = "router.json"
_ESTIMATE_CHUNK = 1024  # prompts featurised and scored at once by ``Router.estimate``
_ARRAYS_FILE = "arrays.npz"


class RouterLoadError(ValueError):
    """A router directory that is missing, incomplete or from an incompatible version."""


class Router:
    """A trained router over a fixed list of models."""

    def __init__(self, estimator: QualityEstimator, encoder: Encoder | None = None,
                 name: str = "default") -> None:
        self.estimator = estimator
        self.encoder = encoder
        self.name = name

    def _encoder(self) -> Encoder:
        if self.encoder is None:
            self.encoder = default_encoder()
        return self.encoder

    def _reads_lexical(self) -> bool:
        """Whether this router's task classifier reads n-grams (``Features.lexical``);
        before training, whether the one training may fit would."""
        if not hasattr(self, "task_classifier_"):
            return self.estimator.reads_tasks()
        return self.task_classifier_ is not None and self.task_classifier_.reads_lexical()

    def features(self, prompts: Sequence[str], show_progress: bool = False) -> Features:
        """The features this router reads: n-grams only for a task classifier that does."""
        return featurize(prompts, self._encoder(), lexical=self._reads_lexical(),
                         show_progress=show_progress)

    def fit(self, outcomes: pd.DataFrame,
            prices: Mapping[str, tuple[float, float]] | None = None,
            show_progress: bool = False) -> Router:
        """Train on a validated outcomes table (see ``switchman.data``)."""
        matrices = to_matrices(outcomes)
        classifies = self.estimator.reads_tasks() and task_codes(matrices.tasks) is not None
        features = featurize(matrices.prompts, self._encoder(), lexical=classifies,
                             show_progress=show_progress)
        return self.fit_features(features, matrices.models, matrices.quality, matrices.cost,
                                 matrices.input_tokens, matrices.output_tokens, prices,
                                 tasks=matrices.tasks)

    def fit_features(self, features: Features, models: Sequence[str], quality: np.ndarray,
                     cost: np.ndarray, input_tokens: np.ndarray, output_tokens: np.ndarray,
                     prices: Mapping[str, tuple[float, float]] | None = None,
                     tasks: np.ndarray | None = None) -> Router:
        """Train on already-encoded prompts (lets a benchmark encode once for many routers).

        ``tasks`` are the training prompts' task labels, where the table has them.
        """
        self.models_ = tuple(models)
        with _one_blas_thread():
            # only estimators that read tasks need the classifier; the cost model's task
            # mode is chosen on held-out quality, which only the (task-reading) default has
            features, self.task_classifier_ = label_tasks(
                features, tasks if self.estimator.reads_tasks() else None)
            self.cost_model_ = CostModel().fit(features, list(models), input_tokens,
                                               output_tokens, cost, prices)
            decision_costs = self.cost_model_.training_costs(features)
            self.estimator.fit(features, quality,
                               RoutingCosts(cost, tuple(decision_costs.values())))
            predicted = self.estimator.oof_quality_
            decision_cost = self._keep_cost_mode(decision_costs)
            if predicted is None:
                predicted = self.estimator.predict(features)
            self.default_cost_weight_ = self._iso_quality_weight(predicted, decision_cost,
                                                                 quality)
        return self

    def _keep_cost_mode(self, decision_costs: dict[str, np.ndarray]) -> np.ndarray:
        """Keep the cost predictor the estimator routed best with out of fold (its
        ``cost_choice_``; with no choice the per-prompt one stays) and return its training
        costs. ``decision_costs`` lists the per-prompt predictor first, so ties keep it."""
        choice = self.estimator.cost_choice_
        mode = "prompt" if choice is None else list(decision_costs)[choice]
        self.cost_model_.mode_ = mode
        return decision_costs[mode]

    def _iso_quality_weight(self, predicted: np.ndarray, decision_cost: np.ndarray,
                            quality: np.ndarray) -> float:
        """The cheapest cost weight whose (held-out) quality matches the best single model.

        That is the gateway's default trade-off: the best model's quality for less money.
        Out-of-fold predictions are used where the estimator has them, so the choice is not
        flattered by in-sample fit.
        """
        estimates = Estimates(self.models_, predicted, decision_cost)
        target = float(quality.mean(axis=0).max())
        return policy.calibrate_cost_weight(estimates, target_quality=target,
                                            observed_quality=quality)

    @property
    def models(self) -> tuple[str, ...]:
        return self.models_

    @property
    def default_cost_weight(self) -> float:
        return self.default_cost_weight_

    def estimate_features(self, features: Features) -> Estimates:
        if len(features) == 0:  # nothing to predict; spares every estimator the edge case
            empty = np.zeros((0, len(self.models_)))
            return Estimates(self.models_, empty, empty.copy())
        with _one_blas_thread():
            if self.task_classifier_ is not None:
                features = self.task_classifier_.with_posteriors(features)
            return Estimates(self.models_, self.estimator.predict(features),
                             self.cost_model_.predict(features))

    def estimate(self, prompts: Sequence[str], show_progress: bool = False) -> Estimates:
        """Expected quality and cost of every model for every prompt.

        Prompts are embedded in one pass (the encoder batches), then featurised and scored
        in chunks, so memory stays flat however many prompts are routed: hashed n-gram
        counts take ~10 KB per prompt and their tf-idf as much again.
        """
        prompts = list(prompts)
        if len(prompts) <= _ESTIMATE_CHUNK:  # the gateway's one prompt: no chunks to stack
            return self.estimate_features(self.features(prompts, show_progress=show_progress))
        embeddings = self._encoder().encode(prompts, show_progress=show_progress)
        lexical = self._reads_lexical()
        parts = [self.estimate_features(make_features(prompts[start:start + _ESTIMATE_CHUNK],
                                                      embeddings[start:start + _ESTIMATE_CHUNK],
                                                      lexical))
                 for start in range(0, len(prompts), _ESTIMATE_CHUNK)]
        return Estimates(self.models_, np.vstack([p.quality for p in parts]),
                         np.vstack([p.cost for p in parts]))

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "models": list(self.models_),
            "encoder": self._encoder().name,
            "default_cost_weight": self.default_cost_weight_,
            "estimator": {"kind": self.estimator.kind, "params": self.estimator.get_params()},
        }
        arrays = {f"estimator.{k}": v for k, v in self.estimator.state_arrays().items()}
        arrays.update({f"cost.{k}": v for k, v in self.cost_model_.state_arrays().items()})
        if self.task_classifier_ is not None:
            arrays.update({f"tasks.{k}": v
                           for k, v in self.task_classifier_.state_arrays().items()})
        arrays, config["shared_arrays"] = _store_once(arrays)
        np.savez(directory / _ARRAYS_FILE, **arrays)
        (directory / _CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, encoder: Encoder | None = None) -> Router:
        """Load a saved router; ``encoder`` overrides the one it names (tests, caches)."""
        directory = Path(directory)
        config = _read_config(directory)
        try:
            with np.load(directory / _ARRAYS_FILE, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise RouterLoadError(
                f"{directory}: {_ARRAYS_FILE} is not a valid router arrays file "
                f"({type(exc).__name__}); retrain with `switchman train`") from exc
        try:
            shared = config.get("shared_arrays", {})
            if not isinstance(shared, dict):
                raise ValueError("shared_arrays is not a mapping of array names")
            for key, stored_as in shared.items():
                arrays[key] = arrays[stored_as]  # one array in memory for every holder
            estimator = estimator_from_params(config["estimator"]["kind"],
                                              config["estimator"]["params"])
            estimator.load_state(sub_state(arrays, "estimator."))
            router = cls(estimator, encoder or encoder_by_name(config["encoder"]),
                         name=config["name"])
            router.models_ = tuple(config["models"])
            router.cost_model_ = CostModel().load_state(sub_state(arrays, "cost."))
            task_state = sub_state(arrays, "tasks.")
            router.task_classifier_ = (TaskClassifier().load_state(task_state)
                                       if task_state else None)
            if router.task_classifier_ is None and router.cost_model_.task_cost_ is not None:
                raise ValueError("per-task costs are saved but the task classifier is not")
            router.default_cost_weight_ = float(config["default_cost_weight"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RouterLoadError(f"{directory}: router files are inconsistent: {exc}") from exc
        return router


def _store_once(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays with each distinct one kept under its first key, {other key: that key}).

    The task mixtures' neighbour residuals and the k-NN family each keep the training
    embeddings: on routellm's 15k prompts that was 71 MB on disk and in memory for 24 MB of
    content. Only arrays of one dtype and shape are compared, so this costs a few
    comparisons of the large arrays.
    """
    kept: dict[str, np.ndarray] = {}
    shared: dict[str, str] = {}
    for key, array in arrays.items():
        twin = next((k for k, a in kept.items() if a.dtype == array.dtype
                     and a.shape == array.shape and np.array_equal(a, array)), None)
        if twin is None:
            kept[key] = array
        else:
            shared[key] = twin
    return kept, shared


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


_blas_pinned = False


def pin_blas_to_one_thread() -> None:
    """One BLAS thread for the whole process from now on (servers call this once).

    Routing calls then skip the per-call limit below, whose thread-pool bookkeeping costs
    about as much as predicting one prompt.
    """
    global _blas_pinned
    _blas_controller().limit(limits=1, user_api="blas")  # applied now, never restored
    _blas_pinned = True


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """Run BLAS on one thread: our products are small or many, and on a busy 2-core box
    BLAS worker threads spend more time waiting on each other than computing (measured:
    a single-prompt prediction 10x slower, a full mmlupro fit 190 s vs 42 s)."""
    if _blas_pinned:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=1, user_api="blas")


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / _CONFIG_FILE
    if not directory.is_dir():
        raise RouterLoadError(f"{directory}: no such router directory")
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise RouterLoadError(
            f"{directory}: not a router directory ({_CONFIG_FILE} is missing)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RouterLoadError(f"{path}: cannot read: {exc}") from exc
    version = config.get("format_version") if isinstance(config, dict) else None
    if version not in _READABLE_VERSIONS:
        raise RouterLoadError(
            f"{path}: format_version {version!r} is not supported by this switchman "
            f"(reads {' or '.join(map(str, _READABLE_VERSIONS))}); retrain with "
            "`switchman train`"
        )
    return config


def new_router(name: str = "default", encoder: Encoder | None = None, seed: int = 0) -> Router:
    """An untrained router for one of ``switchman.estimators.ROUTER_NAMES``."""
    return Router(make_estimator(name, seed=seed), encoder=encoder, name=name)


__all__ = ["FORMAT_VERSION", "Router", "RouterLoadError", "new_router",
           "pin_blas_to_one_thread"]
