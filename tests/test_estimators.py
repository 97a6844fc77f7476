"""Every estimator family on synthetic data whose right answer is known.

Prompts are random unit vectors around two centres (two "kinds" of prompt). Model A answers
kind 1 well (p = .9) and kind 2 badly (.1), model B the reverse, model C is a coin (.5)
everywhere. The per-model prior knows none of that (about .5 for every model), so any
estimator that learns from the embeddings must beat it by a wide margin.
"""

from __future__ import annotations

import inspect
import io
import json
from dataclasses import replace

import numpy as np
import pytest

from switchman.estimators import (
    FAMILIES,
    ROUTER_NAMES,
    QualityEstimator,
    estimator_from_params,
    make_estimator,
)
from switchman.estimators.base import RoutingCosts
from switchman.estimators.cluster import ClusterEstimator
from switchman.estimators.knn import KNNEstimator
from switchman.estimators.prior import PriorEstimator
from switchman.estimators.stacking import StackingEstimator, routing_score
from switchman.estimators.task import TaskMixtureEstimator
from switchman.features import Features, make_features
from switchman.features.task_classifier import TaskClassifier, label_tasks

DIM = 16
TRUE_P = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5]])  # kind x model
COST = np.array([1e-4, 1e-3, 1e-2])  # per model, dollars


def _centres() -> np.ndarray:
    c = np.random.default_rng(123).normal(size=(2, DIM))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def make_labelled(n: int, seed: int) -> tuple[Features, np.ndarray, np.ndarray, np.ndarray]:
    """(features, task labels, observed 0/1 quality, true success probability)."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 2, n)
    x = _centres()[kind] + 0.35 * rng.normal(size=(n, DIM)) / np.sqrt(DIM)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    p = TRUE_P[kind]
    y = (rng.random(p.shape) < p).astype(float)
    log_chars = np.log1p(rng.integers(100, 2000, n).astype(float))
    return Features(x, log_chars), np.where(kind == 0, "kind-1", "kind-2"), y, p


def make_data(n: int, seed: int) -> tuple[Features, np.ndarray, np.ndarray]:
    """Training data as a router hands it to estimators: task ids and posteriors added."""
    features, labels, y, p = make_labelled(n, seed)
    return label_tasks(features, labels)[0], y, p


def _cost(n: int, seed: int = 7) -> np.ndarray:
    return COST * np.random.default_rng(seed).uniform(0.5, 1.5, (n, 1))


def _costs(n: int) -> RoutingCosts:
    """Observed costs only: decisions on them too, as without a router's cost model."""
    return RoutingCosts(_cost(n))


_TRAIN_RAW, _TRAIN_LABELS, Y_TRAIN, P_TRAIN = make_labelled(200, seed=0)
TRAIN, _CLASSIFIER = label_tasks(_TRAIN_RAW, _TRAIN_LABELS)
assert isinstance(_CLASSIFIER, TaskClassifier)


def routed(features: Features) -> Features:
    """What estimators see when routing: text features plus the router's task posteriors."""
    return _CLASSIFIER.with_posteriors(features)


_TEST_RAW, _, _, P_TEST = make_labelled(100, seed=1)
TEST = routed(_TEST_RAW)  # routing never has task labels


def _mse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(((pred - truth) ** 2).mean())


@pytest.fixture(scope="module")
def fitted() -> dict[str, QualityEstimator]:
    """One estimator per router name, fitted once for the module (the default takes ~2 s)."""
    return {name: make_estimator(name).fit(TRAIN, Y_TRAIN.copy(), _costs(len(TRAIN)))
            for name in ROUTER_NAMES}


# --------------------------------------------------------------------------- every family


def test_only_estimators_built_on_tasks_read_them() -> None:
    readers = {name for name in ROUTER_NAMES if make_estimator(name).reads_tasks()}
    assert readers == {"default", "task"}
    assert not StackingEstimator([PriorEstimator(), KNNEstimator()]).reads_tasks()


def test_router_names_cover_the_families() -> None:
    assert set(ROUTER_NAMES) == {"default", "prior", "cluster", "knn", "linear", "mf", "task"}
    for name in ROUTER_NAMES:
        est = make_estimator(name)
        assert est.kind in FAMILIES and isinstance(est, FAMILIES[est.kind])
    assert make_estimator("default").kind == "stacking"
    with pytest.raises(ValueError, match="unknown router"):
        make_estimator("stacking-but-not-a-router-name")
    with pytest.raises(ValueError, match="unknown estimator kind"):
        estimator_from_params("nope", {})


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_predict_shape(name: str, fitted: dict) -> None:
    pred = fitted[name].predict(TEST)
    assert pred.shape == (len(TEST), 3)
    assert np.isfinite(pred).all()
    assert fitted[name].predict(TEST.rows(np.array([3]))).shape == (1, 3)


def _one_at_a_time(estimator: QualityEstimator, features: Features) -> np.ndarray:
    return np.vstack([estimator.predict(features.rows(np.array([i])))
                      for i in range(len(features))])


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_one_prompt_predictions_are_the_batch_rows(name: str, fitted: dict) -> None:
    """A server predicts one prompt at a time, through one-row paths (the neighbour search,
    stacking's blend) that skip the batch code's set-up: the same estimates. The batch's
    float32 similarity product may round its last bit differently, hence the tolerance."""
    batch = fitted[name].predict(TEST)
    assert np.allclose(_one_at_a_time(fitted[name], TEST), batch, rtol=0, atol=1e-6)


@pytest.mark.parametrize("estimator", [KNNEstimator(k=5), KNNEstimator(k=500),
                                       TaskMixtureEstimator(local_k=10)],
                         ids=["knn", "knn-k-above-n", "task-local"])
def test_one_prompt_neighbour_estimates_are_the_batch_rows(estimator: QualityEstimator) -> None:
    estimator.fit(TRAIN, Y_TRAIN)
    batch = estimator.predict(TEST)
    assert np.allclose(_one_at_a_time(estimator, TEST), batch, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_predictions_are_probabilities_even_far_from_the_data(name: str, fitted: dict) -> None:
    far = routed(Features(-TEST.embeddings, np.full(len(TEST), np.log1p(1e6))))  # anti-prompts
    for feats in (TEST, far):
        pred = fitted[name].predict(feats)
        assert np.isfinite(pred).all()
        assert pred.min() >= 0.0 and pred.max() <= 1.0


@pytest.mark.parametrize("name", [n for n in ROUTER_NAMES if n != "prior"])
def test_learns_the_structure_better_than_the_prior(name: str, fitted: dict) -> None:
    prior = PriorEstimator().fit(TRAIN, Y_TRAIN).predict(TEST)
    pred = fitted[name].predict(TEST)
    assert _mse(prior, P_TEST) > 0.1  # the prior is ~.5 where the truth is .1 or .9
    # the default is chosen by how it routes, and of candidates that route alike it keeps
    # the one shrunk furthest toward the prior: closer to the truth, not necessarily close
    factor = 0.7 if name == "default" else 0.4
    assert _mse(pred, P_TEST) < factor * _mse(prior, P_TEST)
    # and it ranks the right model first where it matters: A on kind 1, B on kind 2
    kind1 = P_TEST[:, 0] > 0.5
    # (32 clusters of ~6 prompts are noisy: the cluster family gets a few wrong)
    assert np.mean(np.argmax(pred[kind1], axis=1) == 0) > 0.8
    assert np.mean(np.argmax(pred[~kind1], axis=1) == 1) > 0.8


def test_prior_is_the_per_model_mean(fitted: dict) -> None:
    pred = fitted["prior"].predict(TEST)
    assert pred == pytest.approx(np.broadcast_to(Y_TRAIN.mean(axis=0), pred.shape))


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_predict_is_pure(name: str, fitted: dict) -> None:
    est = fitted[name]
    emb, chars = TEST.embeddings.copy(), TEST.log_chars.copy()
    state = {k: v.copy() for k, v in est.state_arrays().items()}
    first = est.predict(TEST)
    first_copy = first.copy()
    first[:] = -1.0  # the caller owns the output: scribbling on it changes nothing
    second = est.predict(TEST)
    assert np.array_equal(second, first_copy)
    assert np.array_equal(TEST.embeddings, emb) and np.array_equal(TEST.log_chars, chars)
    after = est.state_arrays()
    assert after.keys() == state.keys()
    assert all(np.array_equal(after[k], state[k]) for k in state)


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_fit_returns_self_and_leaves_its_inputs_alone(name: str) -> None:
    feats, y, _ = make_data(80, seed=11)
    costs = _costs(80)
    cost = costs.observed
    copies = (feats.embeddings.copy(), feats.log_chars.copy(), feats.task_ids.copy(), y.copy(),
              cost.copy())
    est = make_estimator(name)
    assert est.fit(feats, y, costs) is est
    for before, after in zip(copies, (feats.embeddings, feats.log_chars, feats.task_ids, y, cost),
                             strict=True):
        assert np.array_equal(before, after)


@pytest.mark.parametrize("name", [n for n in ROUTER_NAMES if n != "default"])
def test_fit_is_deterministic(name: str, fitted: dict) -> None:
    again = make_estimator(name).fit(TRAIN, Y_TRAIN.copy(), _costs(len(TRAIN)))
    assert np.array_equal(again.predict(TEST), fitted[name].predict(TEST))


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_get_params_are_the_init_arguments(name: str, fitted: dict) -> None:
    est = fitted[name]
    init = set()  # PriorEstimator has no hyper-parameters (object's own __init__)
    if type(est).__init__ is not object.__init__:
        init = set(inspect.signature(type(est).__init__).parameters) - {"self"}
    params = est.get_params()
    assert set(params) == init
    assert not any(k.endswith("_") for k in params)


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_state_round_trip_through_json_and_npz(name: str, fitted: dict) -> None:
    est = fitted[name]
    params = json.loads(json.dumps(est.get_params()))  # what router.json stores
    buf = io.BytesIO()
    np.savez(buf, **est.state_arrays())  # what arrays.npz stores
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert all(a.dtype != object for a in arrays.values())
    clone = estimator_from_params(est.kind, params)
    assert type(clone) is type(est)
    assert clone.get_params() == est.get_params()
    assert clone.load_state(arrays) is clone
    assert np.array_equal(clone.predict(TEST), est.predict(TEST))


# --------------------------------------------------------------------------- shrinkage


def _axes(*rows: list[float]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


def test_knn_shrinks_toward_the_prior_by_hand() -> None:
    e1, e2, e3 = _axes([1, 0, 0]), _axes([0, 1, 0]), _axes([0, 0, 1])
    train = Features(np.vstack([e1, e2]), np.log1p(np.array([100.0, 100.0])))
    quality = np.array([[1.0, 0.0], [0.0, 1.0]])  # prior (.5, .5)

    def predict(query: np.ndarray, **kw: float) -> np.ndarray:
        est = KNNEstimator(**{"k": 1, "temperature": 0.1, **kw}).fit(train, quality)
        return est.predict(Features(query, np.log1p(np.array([100.0]))))[0]

    # exact match: weight exp(0) = 1; (1 x (1, 0) + s x (.5, .5)) / (1 + s)
    assert predict(e1, shrinkage=0.0) == pytest.approx([1.0, 0.0])
    assert predict(e1, shrinkage=1.0) == pytest.approx([0.75, 0.25])
    assert predict(e1, shrinkage=10.0) == pytest.approx([6 / 11, 5 / 11])
    # an unrelated prompt (cosine 0): weight exp(-10) ~ 4.5e-5 -> essentially the prior
    assert predict(e3, shrinkage=1.0) == pytest.approx([0.5, 0.5], abs=1e-4)
    # k larger than the training set uses all of it
    both = predict(e1, k=50, shrinkage=1.0)
    w2 = np.exp(-10.0)
    assert both == pytest.approx([1.5 / (2 + w2), (w2 + 0.5) / (2 + w2)])


def test_knn_with_little_data_stays_near_the_prior() -> None:
    few, y_few, _ = make_data(6, seed=3)
    many, y_many, _ = make_data(400, seed=3)
    prior_few = y_few.mean(axis=0)
    pred_few = KNNEstimator(k=20).fit(few, y_few).predict(TEST)
    pred_many = KNNEstimator(k=20).fit(many, y_many).predict(TEST)
    # less evidence, closer to the prior; more evidence, closer to the truth
    assert np.abs(pred_few - prior_few).mean() < np.abs(pred_many - y_many.mean(axis=0)).mean()
    assert _mse(pred_many, P_TEST) < _mse(pred_few, P_TEST)


def _two_groups(per_group: int, seed: int = 0) -> tuple[Features, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(4, dtype=np.float32)[:2]
    x = np.repeat(centres, per_group, axis=0) + 0.01 * rng.normal(size=(2 * per_group, 4))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    y = np.repeat(np.array([[1.0, 0.0], [0.0, 1.0]]), per_group, axis=0)  # prior (.5, .5)
    return Features(x, np.log1p(np.full(2 * per_group, 300.0))), y


@pytest.mark.parametrize(("per_group", "expected"), [
    (5, 0.75),  # (5 x 1 + 5 x .5) / (5 + 5)
    (50, 52.5 / 55),  # (50 x 1 + 5 x .5) / (50 + 5)
])
def test_cluster_means_shrink_toward_the_prior_by_hand(per_group: int, expected: float) -> None:
    feats, y = _two_groups(per_group)
    est = ClusterEstimator(n_clusters=2, shrinkage=5.0).fit(feats, y)
    pred = est.predict(feats)
    first, second = pred[:per_group], pred[per_group:]
    assert first == pytest.approx(np.tile([expected, 1 - expected], (per_group, 1)))
    assert second == pytest.approx(np.tile([1 - expected, expected], (per_group, 1)))


def test_cluster_with_tiny_data_is_the_prior() -> None:
    # 4 prompts: fewer than 5 per cluster, so one cluster: every prediction is the prior
    feats, y = _two_groups(2)
    est = ClusterEstimator(n_clusters=2).fit(feats, y)
    assert est.centroids_.shape[0] == 1
    assert est.predict(feats) == pytest.approx(np.full((4, 2), 0.5))


# --------------------------------------------------------------------------- task labels


def test_task_estimator_uses_task_labels() -> None:
    est = TaskMixtureEstimator().fit(TRAIN, Y_TRAIN)
    probs = TEST.task_probs
    assert probs is not None and probs.shape == (len(TEST), 2)
    assert probs.sum(axis=1) == pytest.approx(np.ones(len(TEST)))
    kind1 = P_TEST[:, 0] > 0.5
    assert np.mean(np.argmax(probs, axis=1) == np.where(kind1, 0, 1)) > 0.95
    pred = est.predict(TEST)
    assert pred[kind1, 0].mean() > 0.75 and pred[kind1, 1].mean() < 0.25
    assert pred[~kind1, 1].mean() > 0.75 and pred[~kind1, 0].mean() < 0.25


def test_task_estimator_never_reads_task_labels_at_predict_time() -> None:
    est = TaskMixtureEstimator(local_k=10).fit(TRAIN, Y_TRAIN)
    lying = replace(TEST, task_ids=np.random.default_rng(0).integers(0, 2, len(TEST)))
    assert np.array_equal(est.predict(lying), est.predict(TEST))


def test_task_estimator_needs_the_routers_posteriors() -> None:
    est = TaskMixtureEstimator().fit(TRAIN, Y_TRAIN)
    with pytest.raises(ValueError, match="task posteriors"):
        est.predict(_TEST_RAW)


@pytest.mark.parametrize("tasks", [None, "one"])
def test_task_estimator_without_labels_is_the_prior(tasks: str | None) -> None:
    labels = None if tasks is None else np.full(len(TRAIN), tasks)
    feats, classifier = label_tasks(_TRAIN_RAW, labels)
    assert classifier is None and feats.task_ids is None and feats.task_probs is None
    pred = TaskMixtureEstimator().fit(feats, Y_TRAIN).predict(_TEST_RAW)
    assert pred == pytest.approx(np.broadcast_to(Y_TRAIN.mean(axis=0), pred.shape))


def test_task_estimator_with_local_residuals_round_trips() -> None:
    est = TaskMixtureEstimator(local_k=15).fit(TRAIN, Y_TRAIN)
    arrays = est.state_arrays()
    assert any(k.startswith("local.") for k in arrays)
    clone = estimator_from_params("task", json.loads(json.dumps(est.get_params())))
    clone.load_state({k: v.copy() for k, v in arrays.items()})
    assert np.array_equal(clone.predict(TEST), est.predict(TEST))


WORDS = (["enzyme", "protein", "cell", "membrane", "gene", "mitosis"],
         ["tort", "contract", "plaintiff", "statute", "court", "liability"])
FILLER = ["which", "of", "the", "following", "is", "true", "about", "a", "an", "this"]


def _worded(n: int, seed: int) -> tuple[Features, np.ndarray, np.ndarray, np.ndarray]:
    """Prompts whose words give the kind away while their embeddings are pure noise.

    Returns (text features, task labels, observed quality, true success probability).
    """
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 2, n)
    prompts = [" ".join([*rng.choice(FILLER, 6), *rng.choice(WORDS[k], 3)]) for k in kind]
    noise = rng.normal(size=(n, DIM))
    noise = (noise / np.linalg.norm(noise, axis=1, keepdims=True)).astype(np.float32)
    y = (rng.random((n, 3)) < TRUE_P[kind]).astype(float)
    labels = np.where(kind == 0, "biology", "law")
    return make_features(prompts, noise), labels, y, TRUE_P[kind]


def test_task_estimator_reads_the_words_of_the_prompt() -> None:
    raw_train, labels, y, _ = _worded(300, seed=0)
    raw_test, _, _, p_test = _worded(100, seed=1)
    assert raw_test.lexical is not None and raw_test.task_ids is None
    train, classifier = label_tasks(raw_train, labels)
    assert classifier is not None
    est = TaskMixtureEstimator().fit(train, y)
    prior = np.broadcast_to(y.mean(axis=0), p_test.shape)
    predicted = est.predict(classifier.with_posteriors(raw_test))
    assert _mse(predicted, p_test) < 0.3 * _mse(prior, p_test)
    # without the words (embeddings only, which are noise here) there is nothing to learn
    blind_train, blind = label_tasks(Features(raw_train.embeddings, raw_train.log_chars), labels)
    assert blind is not None
    blind_test = blind.with_posteriors(Features(raw_test.embeddings, raw_test.log_chars))
    assert _mse(TaskMixtureEstimator().fit(blind_train, y).predict(blind_test), p_test) > 0.08
    # the lexical classifier's state round-trips like everything else
    arrays = classifier.state_arrays()
    assert arrays["idf"].size > 0 and "lexical_coef" in arrays
    clone = TaskClassifier().load_state({k: v.copy() for k, v in arrays.items()})
    assert np.array_equal(clone.probabilities(raw_test), classifier.probabilities(raw_test))


def test_training_posteriors_come_from_classifiers_that_did_not_see_the_prompt() -> None:
    # Random labels: a classifier that memorises its training words "knows" each training
    # prompt's label, but out of fold it can only guess.
    raw, _, _, _ = _worded(300, seed=2)
    labels = np.random.default_rng(5).choice(["a", "b"], len(raw))
    train, classifier = label_tasks(raw, labels)
    assert classifier is not None and train.task_ids is not None and train.task_probs is not None
    in_sample = np.mean(classifier.probabilities(raw).argmax(axis=1) == train.task_ids)
    out_of_fold = np.mean(train.task_probs.argmax(axis=1) == train.task_ids)
    assert in_sample > 0.9 and out_of_fold < 0.65


# --------------------------------------------------------------------------- stacking


def _stack() -> StackingEstimator:
    return StackingEstimator([PriorEstimator(), KNNEstimator(k=10),
                              ClusterEstimator(n_clusters=4), TaskMixtureEstimator()],
                             n_folds=3, seed=0)


def test_stacking_blend_is_the_einsum_over_the_weighted_bases() -> None:
    """The blend sums base by base, skipping bases without weight: exactly the einsum it
    replaced, from the whole (bases, n, m) array or only the weighted bases' predictions."""
    rng = np.random.default_rng(3)
    for n in (1, 7):
        predictions = rng.uniform(0, 1, (5, n, 4))
        weights = rng.uniform(0, 1, (4, 5))
        weights[:, [1, 3]] = 0.0
        intercept = rng.normal(0, 0.1, 4)
        expected = np.clip(np.einsum("bnm,mb->nm", predictions, weights) + intercept, 0, 1)
        assert np.array_equal(StackingEstimator._blend(predictions, weights, intercept),
                              expected)
        weighted = {b: predictions[b] for b in (0, 2, 4)}
        assert np.array_equal(StackingEstimator._weighted_sum(weighted, [0, 2, 4], weights,
                                                              intercept, n), expected)
        none = StackingEstimator._weighted_sum({}, [], np.zeros((4, 5)), intercept, n)
        assert np.array_equal(none, np.broadcast_to(np.clip(intercept, 0, 1), (n, 4)))


def test_stacking_without_cost_uses_the_least_squares_blend() -> None:
    est = _stack().fit(TRAIN, Y_TRAIN)
    assert est.selected_ == "blend"
    assert est.weights_.shape == (3, 4)
    assert (est.weights_ >= 0).all()
    assert _mse(est.predict(TEST), P_TEST) < 0.02


def test_routing_score_is_aiq_with_a_penalty_for_missing_the_best_model() -> None:
    rng = np.random.default_rng(0)
    observed = np.column_stack([rng.random(60) < 0.2, rng.random(60) < 0.9]).astype(float)
    cost = np.tile([1e-4, 1e-2], (60, 1))
    good = routing_score(observed, cost, observed)  # perfect foresight
    assert 0.0 < good <= 1.0
    # predictions that always rank the cheap, weak model first never reach the best model
    stubborn = np.tile([0.9, 0.1], (60, 1))
    assert routing_score(stubborn, cost, observed) < 0.0


def test_stacking_selects_by_out_of_fold_routing_score_when_given_cost() -> None:
    cost = _cost(len(TRAIN))
    # two cost predictors the policy might decide on: per prompt, and each model's mean
    predicted = (cost * 1.1, np.broadcast_to(cost.mean(axis=0), cost.shape).copy())
    est = _stack().fit(TRAIN, Y_TRAIN, RoutingCosts(cost, predicted))
    # Recompute, independently of the fit, every candidate's out-of-fold routing score:
    # charged the observed cost, decided on the predicted cost that suits it best.
    twin = estimator_from_params("stacking", est.get_params())
    oof = twin.out_of_fold(TRAIN, Y_TRAIN)
    candidates = twin._candidates(oof, Y_TRAIN)

    def score(quality: np.ndarray) -> float:
        return max(routing_score(quality, cost, Y_TRAIN, decision_cost=seen) for seen in predicted)

    scores = {name: score(twin._blend(oof, w, b)) for name, (w, b, _) in candidates.items()}
    assert {"blend", "average", "0:prior", "1:knn", "2:cluster", "3:task",
            "blend@0.5", "3:task@0.25"} <= scores.keys()
    assert est.selected_ in scores
    # the kept candidate is at most a little below the best out of fold, and only ever in
    # favour of one that keeps less of its per-prompt deviation from the prior
    best = max(scores, key=scores.__getitem__)
    assert scores[est.selected_] >= scores[best] - 0.02
    assert candidates[est.selected_].share <= candidates[best].share
    # the per-task signal here is strong: it is routed on, top point included
    assert est.selected_ != "0:prior"
    assert est.top_model_ == -1
    assert np.array_equal(est.oof_quality_, twin._blend(oof, *candidates[est.selected_][:2]))
    # the cost predictor it routes best with, which the router will keep (ties: the first)
    chosen = [routing_score(est.oof_quality_, cost, Y_TRAIN, decision_cost=seen)
              for seen in predicted]
    assert est.cost_choice_ == int(np.argmax(chosen))


def test_stacking_decides_on_observed_costs_without_predicted_ones() -> None:
    cost = _cost(len(TRAIN))
    alone = _stack().fit(TRAIN, Y_TRAIN, RoutingCosts(cost))
    same = _stack().fit(TRAIN, Y_TRAIN, RoutingCosts(cost, (cost,)))
    assert alone.selected_ == same.selected_
    assert np.array_equal(alone.oof_quality_, same.oof_quality_)
    assert alone.cost_choice_ is None and same.cost_choice_ == 0


def test_stacking_out_of_fold_predictions_never_see_their_prompt() -> None:
    # A 1-NN with no shrinkage, in sample, returns each prompt's own outcomes. Out of fold
    # it cannot, so its OOF error must be far from zero.
    est = StackingEstimator([KNNEstimator(k=1, shrinkage=0.0)], n_folds=4, seed=0)
    oof = est.out_of_fold(TRAIN, Y_TRAIN)
    in_sample = KNNEstimator(k=1, shrinkage=0.0).fit(TRAIN, Y_TRAIN).predict(TRAIN)
    assert _mse(in_sample, Y_TRAIN) == pytest.approx(0.0, abs=1e-9)
    assert _mse(oof[0], Y_TRAIN) > 0.05
