"""The cost model: per-prompt and task-mixture predictors, and which one a router keeps."""

from __future__ import annotations

import numpy as np
import pytest

from switchman.cost import CostModel
from switchman.estimators.stacking import routing_score
from switchman.features import Features
from switchman.features.task_classifier import TaskClassifier, label_tasks
from switchman.router import new_router

MODELS = ["cheap", "strong"]
PRICES = {"cheap": (1.0, 2.0), "strong": (10.0, 30.0)}  # USD per million tokens


def _data(n: int, seed: int) -> tuple[Features, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two tasks with different prompt lengths and answer lengths; costs follow prices.

    Returns (text features, input tokens, output tokens, cost, task index).
    """
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 2, n)
    centres = np.eye(8)[:2]
    x = centres[kind] + 0.2 * rng.normal(size=(n, 8))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    chars = np.where(kind == 0, 400, 4000) * rng.uniform(0.5, 1.5, n)
    tin = np.ceil(chars / 4)
    tout = np.column_stack([np.where(kind == 0, 50, 300)] * 2) * rng.uniform(0.8, 1.2, (n, 2))
    price = np.array([PRICES[m] for m in MODELS]) / 1e6
    cost = tin[:, None] * price[:, 0] + tout * price[:, 1]
    return Features(x, np.log1p(chars)), tin, tout, cost, kind


def _labelled(n: int, seed: int) -> tuple[Features, TaskClassifier, np.ndarray, np.ndarray,
                                          np.ndarray]:
    """Training data as the router hands it over: task ids and posteriors added."""
    features, tin, tout, cost, kind = _data(n, seed)
    labelled, classifier = label_tasks(features, np.where(kind == 0, "short", "long"))
    assert classifier is not None
    return labelled, classifier, tin, tout, cost


def test_both_predictors_track_the_observed_cost() -> None:
    features, classifier, tin, tout, cost = _labelled(400, seed=0)
    model = CostModel().fit(features, MODELS, tin, tout, cost, PRICES)
    test, _, _, truth, _ = _data(200, seed=1)
    test = classifier.with_posteriors(test)
    for predicted in (model.per_prompt(test), model.task_mixture(test)):
        assert predicted.shape == truth.shape and (predicted > 0).all()
        assert np.median(np.abs(predicted - truth) / truth) < 0.35
    # per prompt follows each prompt's length; the task mixture only each task's mean
    assert np.corrcoef(model.per_prompt(test)[:, 1], truth[:, 1])[0, 1] > 0.95
    assert model.mode_ == "prompt"  # the default until a router chooses
    # training predictions of the task mixture come from the out-of-fold posteriors
    assert model.oof_task_cost_ is not None
    assert np.array_equal(model.oof_task_cost_, model.task_mixture(features))


def test_mode_and_task_costs_round_trip() -> None:
    features, classifier, tin, tout, cost = _labelled(300, seed=0)
    model = CostModel().fit(features, MODELS, tin, tout, cost, PRICES)
    model.mode_ = "task"
    clone = CostModel().load_state({k: v.copy() for k, v in model.state_arrays().items()})
    test = classifier.with_posteriors(_data(50, seed=2)[0])
    assert clone.mode_ == "task"
    assert np.array_equal(clone.predict(test), model.task_mixture(test))
    with pytest.raises(ValueError, match="task posteriors"):
        clone.predict(_data(50, seed=2)[0])
    arrays = model.state_arrays()
    del arrays["task_cost"]
    with pytest.raises(ValueError, match="without per-task costs"):
        CostModel().load_state(arrays)


def test_without_task_labels_only_the_per_prompt_predictor_exists() -> None:
    features, tin, tout, cost, _ = _data(200, seed=0)
    model = CostModel().fit(features, MODELS, tin, tout, cost, PRICES)
    assert model.oof_task_cost_ is None
    with pytest.raises(ValueError, match="no task labels"):
        model.task_mixture(features)
    loaded = CostModel().load_state(model.state_arrays())
    assert np.array_equal(loaded.predict(features), model.per_prompt(features))


def test_routing_score_measures_observed_cost_but_decides_on_predicted() -> None:
    observed = np.tile([0.0, 1.0], (40, 1))  # only the strong model ever answers
    cost = np.tile([1e-4, 1e-2], (40, 1))
    truthful = routing_score(observed, cost, observed)
    # predicted costs that call the strong model the cheap one: it is always chosen, so the
    # sweep never sees the cheap end of the frontier, but it is scored at its real price
    inverted = routing_score(observed, cost, observed, decision_cost=cost[:, ::-1])
    assert truthful >= inverted > 0


def test_router_keeps_the_cost_predictor_that_routes_better_out_of_fold() -> None:
    features, tin, tout, cost, kind = _data(300, seed=0)
    tasks = np.where(kind == 0, "short", "long")
    rng = np.random.default_rng(3)
    quality = (rng.random((300, 2)) < np.where(kind[:, None] == 0, [0.8, 0.9], [0.3, 0.9]))
    router = new_router("default").fit_features(features, MODELS, quality.astype(float), cost,
                                                tin, tout, PRICES, tasks=tasks)
    oof = router.estimator.oof_quality_
    scores = {mode: routing_score(oof, cost, quality.astype(float), decision_cost=c)
              for mode, c in (("prompt", router.cost_model_.per_prompt(features)),
                              ("task", router.cost_model_.oof_task_cost_))}
    expected = "task" if scores["task"] > scores["prompt"] else "prompt"
    assert router.cost_model_.mode_ == expected
    # a family without out-of-fold predictions keeps the per-prompt predictor
    plain = new_router("knn").fit_features(features, MODELS, quality.astype(float), cost,
                                           tin, tout, PRICES, tasks=tasks)
    assert plain.cost_model_.mode_ == "prompt"
    assert plain.estimator.cost_choice_ is None and plain.estimator.oof_quality_ is None
