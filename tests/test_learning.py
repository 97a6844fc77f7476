"""The online learner on synthetic streams whose truth is known: what it must learn, what it
must never do (choose an ineligible model, explore beyond its share), and that its state
survives a JSON round trip."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from switchman.estimates import Estimates
from switchman.learning.config import LearnerConfig
from switchman.learning.context import Context, PromptProjection
from switchman.learning.learner import OnlineLearner
from switchman.learning.packing import pack, unpack
from switchman.learning.replay import ReplaySettings, StreamOutcomes, replay

MODELS = ("a", "b", "c")
DIM = 8  # embedding size of the synthetic prompts


def _prompts(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _estimates(n: int, quality: tuple[float, ...], cost: tuple[float, ...]) -> Estimates:
    return Estimates(MODELS, np.tile(quality, (n, 1)), np.tile(cost, (n, 1)))


def _learner(**settings: object) -> OnlineLearner:
    return OnlineLearner(MODELS, DIM, LearnerConfig(**settings))


def test_with_no_feedback_it_is_the_offline_router() -> None:
    learner = _learner()
    context = learner.context(_prompts(1)[0], _estimates(1, (0.5, 0.7, 0.6), (1.0, 1.0, 1.0)))
    beliefs = learner.posterior(context)
    np.testing.assert_allclose(beliefs.quality, [0.5, 0.7, 0.6])
    np.testing.assert_allclose(beliefs.cost, [1.0, 1.0, 1.0])
    decision = learner.decide(context, cost_weight=0.0, explore=False)
    assert decision.model == "b" and not decision.explored


def test_it_learns_a_bias_the_router_missed() -> None:
    """The router rates a at 0.5 but it answers 90% right: the learner finds out and switches."""
    n = 400
    rng = np.random.default_rng(1)
    estimates = _estimates(n, (0.5, 0.7, 0.3), (1e-3, 1e-3, 1e-3))
    truth = np.column_stack([rng.random(n) < 0.9, rng.random(n) < 0.7, rng.random(n) < 0.3])
    learner = _learner()
    contexts = learner.contexts(_prompts(n), estimates)
    for context, outcome in zip(contexts[:300], truth[:300], strict=True):
        learner.update("a", context, float(outcome[0]), 1e-3)  # feedback on a, as if chosen
    believed = np.mean([learner.posterior(c).quality[0] for c in contexts[300:]])
    assert abs(believed - 0.9) < 0.08
    assert {learner.decide(c, 0.0, explore=False).model for c in contexts[300:]} == {"a"}


def test_it_adapts_when_the_best_model_breaks() -> None:
    n, start = 600, 300
    rng = np.random.default_rng(2)
    quality = np.column_stack([rng.random(n) < 0.9, rng.random(n) < 0.7,
                               rng.random(n) < 0.5]).astype(float)
    quality[start:, 0] = 0.0  # a breaks half-way
    cost = np.full((n, 3), 1e-3)
    estimates = _estimates(n, (0.9, 0.7, 0.5), (1e-3, 1e-3, 1e-3))
    result = replay(estimates, StreamOutcomes(MODELS, quality, cost), ReplaySettings(),
                    _learner(), _prompts(n))
    offline = replay(estimates, StreamOutcomes(MODELS, quality, cost), ReplaySettings())
    assert (offline.choice[start:] == 0).all()  # the offline router never notices
    assert (result.choice[start + 50:] == 0).mean() < 0.05  # the learner moved away
    assert result.quality[start + 50:].mean() > 0.6


def test_a_model_known_only_by_its_prior_that_answers_nothing_right_loses_its_traffic() -> None:
    """Feedback on one model also teaches the correction all models share, so the others
    are marked down too; the failing model's own prior, widened by the change alarm, must
    still let its level fall below theirs. (With the alarm's old width, 10x, and the
    narrower prior on the router's-estimate coefficient, this prompt's model never lost
    its traffic.)"""
    dim = 384  # the static encoder's embedding, as a gateway's learner sees it
    # quality_priors only: the router learned neither model from any prompt
    learner = OnlineLearner(("cheap", "mid"), dim, prompts_seen={"cheap": 0, "mid": 0})
    estimates = Estimates(("cheap", "mid"), np.array([[0.3, 0.6]]), np.array([[1e-6, 1e-5]]))
    prompt = np.eye(dim)[0]
    zeros = 0
    while zeros < 80:
        context = learner.context(prompt, estimates)
        if learner.decide(context, 0.0, explore=False).model != "mid":
            break
        learner.update("mid", context, quality=0.0)
        zeros += 1
    assert learner.decide(learner.context(prompt, estimates), 0.0, explore=False).model == "cheap"
    assert zeros < 60

def test_it_notices_a_model_that_loses_a_fifth_of_its_right_answers() -> None:
    """a falls from 0.9 to 0.72 half-way, b stays at 0.8: too small a change per answer for
    a residual CUSUM, but the scores' likelihood ratios find it and the learner moves to b.
    The router behind it was trained on 4,000 prompts, so only a detected change lets it
    move that far. Without drift, the same detector raises no alarm in 3,000 scores."""
    n, start = 1400, 400
    rng = np.random.default_rng(5)
    quality = np.column_stack([rng.random(n) < 0.9, rng.random(n) < 0.8,
                               rng.random(n) < 0.3]).astype(float)
    quality[start:, 0] *= rng.random(n - start) < 0.8
    estimates = _estimates(n, (0.9, 0.8, 0.3), (1e-3, 1e-3, 1e-3))
    seen = dict.fromkeys(MODELS, 4000)
    learner = OnlineLearner(MODELS, DIM, LearnerConfig(), prompts_seen=seen)
    result = replay(estimates, StreamOutcomes(MODELS, quality, np.full((n, 3), 1e-3)),
                    ReplaySettings(), learner, _prompts(n))
    assert learner.quality.alarms >= 1
    assert (result.choice[start + 400:] == 1).mean() > 0.9
    for level in (0.9, 0.5):  # no change: no alarm
        calm = OnlineLearner(MODELS, DIM, LearnerConfig(), prompts_seen=seen)
        contexts = calm.contexts(_prompts(3000, seed=7), _estimates(3000, (level,) * 3,
                                                                    (1e-3,) * 3))
        for context in contexts:
            calm.update("a", context, float(rng.random() < level))
        assert calm.quality.alarms == 0


def test_it_learns_a_price_change() -> None:
    learner = _learner()
    estimates = _estimates(50, (0.8, 0.7, 0.5), (1e-3, 1e-4, 1e-4))
    contexts = learner.contexts(_prompts(50), estimates)
    for context in contexts[:40]:
        learner.update("a", context, None, 1e-2)  # a bill without a score: 10x the estimate
    assert learner.posterior(contexts[45]).cost[0] == pytest.approx(1e-2, rel=0.35)


def test_it_only_ever_chooses_eligible_models() -> None:
    learner = _learner(max_explore_share=1.0)
    learner.add_model("new", uncertainty=20.0)  # very uncertain: optimism would pick it
    models = (*MODELS, "new")
    eligible = np.array([True, False, True, False])
    prompts = _prompts(300)
    for step in range(300):
        context = Context(models, learner.projection(prompts[step]),
                          np.array([0.5, 0.9, 0.4, 0.6]), np.full(4, 1e-3))
        decision = learner.decide(context, 1.0, eligible)
        assert eligible[decision.index]
        learner.update(decision.model, context, 1.0, 1e-3)
    none = learner.decide(context, 1.0, np.zeros(4, dtype=bool))
    assert none.index == -1 and none.model is None


def test_exploration_stays_within_its_share() -> None:
    share, burst, n = 0.1, 3.0, 2000
    learner = _learner(max_explore_share=share, explore_burst=burst)
    learner.add_model("new", uncertainty=20.0)
    models = (*MODELS, "new")
    prompts = _prompts(n)
    explored = []
    for step in range(n):  # no feedback ever: the new model stays uncertain
        context = Context(models, learner.projection(prompts[step]),
                          np.array([0.9, 0.5, 0.4, 0.6]), np.full(4, 1e-3))
        explored.append(learner.decide(context, 0.0).explored)
    explored = np.array(explored)
    assert explored.any()
    for window in (100, 500, n):  # every window: at most share * n + burst
        counts = np.convolve(explored, np.ones(window), mode="valid")
        assert counts.max() <= share * window + burst


def test_exploration_can_be_switched_off() -> None:
    models = (*MODELS, "new")
    for learner, per_request in ((_learner(explore=False), True), (_learner(), False)):
        learner.add_model("new", uncertainty=20.0)
        context = Context(models, learner.projection(_prompts(1)[0]),
                          np.array([0.9, 0.5, 0.4, 0.6]), np.full(4, 1e-3))
        decisions = [learner.decide(context, 0.0, explore=per_request) for _ in range(50)]
        assert {d.model for d in decisions} == {"a"}
        assert not any(d.explored for d in decisions)


def test_a_new_model_is_explored_until_its_uncertainty_is_small() -> None:
    learner = _learner(max_explore_share=0.2)
    learner.add_model("new", uncertainty=5.0)
    models = (*MODELS, "new")
    rng = np.random.default_rng(3)
    prompts = _prompts(1500)
    chosen_new, spread = [], []
    for step in range(1500):
        context = Context(models, learner.projection(prompts[step]),
                          np.array([0.8, 0.5, 0.4, 0.75]), np.full(4, 1e-3))
        spread.append(learner.posterior(context).quality_std[3])
        decision = learner.decide(context, 0.0)
        chosen_new.append(decision.model == "new")
        truth = {"a": 0.8, "b": 0.5, "c": 0.4, "new": 0.6}[decision.model]
        learner.update(decision.model, context, float(rng.random() < truth), 1e-3)
    chosen_new = np.array(chosen_new)
    assert chosen_new[:300].sum() >= 5  # it was tried
    assert min(spread) < 0.75 * spread[0]  # until its own outcomes narrowed it enough to tell
    assert chosen_new[-500:].mean() < 0.02  # and then, worse than a, given up


def test_the_prior_narrows_with_the_prompts_the_router_learned_a_model_from() -> None:
    """Same feedback, a router trained on 16x more prompts: its estimate moves 16x less at
    first (prior std sqrt(128 / n)); a model known from no prompt (a guess) is widest."""
    context = Context(("a",), np.zeros(LearnerConfig().dim), np.array([0.5]), np.array([1.0]))
    stds = {}
    for n in (4096, 256, 16, 0):
        learner = OnlineLearner(("a",), DIM, LearnerConfig(), prompts_seen={"a": n})
        stds[n] = float(learner.posterior(context).quality_std[0])
    assert stds[256] / stds[4096] == pytest.approx(4.0)
    assert stds[16] / stds[256] == pytest.approx(4.0)
    assert stds[0] / stds[16] == pytest.approx(5.0 / np.sqrt(128 / 16))  # capped at 5x
    flat = OnlineLearner(("a",), DIM, LearnerConfig(prior_prompts=0), prompts_seen={"a": 16})
    assert flat.posterior(context).quality_std[0] == pytest.approx(
        _learner().posterior(Context(("a",), context.prompt, context.quality,
                                     context.cost)).quality_std[0])
    # after 200 scores of 1.0 on a rated at 0.5, the rough router is corrected far more
    moved = {}
    for n in (4096, 16):
        learner = OnlineLearner(("a",), DIM, LearnerConfig(change_threshold=0,
                                                           change_evidence=0),
                                prompts_seen={"a": n})
        for _ in range(200):
            learner.update("a", context, 1.0)
        moved[n] = float(learner.posterior(context).quality[0]) - 0.5
    assert moved[16] > 5 * moved[4096] > 0


def test_how_much_the_router_knows_of_each_model_survives_a_restart() -> None:
    learner = OnlineLearner(MODELS, DIM, LearnerConfig(), prompts_seen={"a": 4096, "new": 8})
    restored = OnlineLearner.from_state(json.loads(json.dumps(learner.to_state())))
    assert restored.prompts_seen == {"a": 4096.0, "new": 8.0}
    models = (*MODELS, "new")
    context = Context(models, np.zeros(LearnerConfig().dim), np.full(4, 0.5), np.ones(4))
    # "new" joins after the restart, as wide as its 8 prompts say, in both
    np.testing.assert_allclose(restored.posterior(context).quality_std,
                               learner.posterior(context).quality_std)
    assert restored.posterior(context).quality_std[3] > 2 * restored.posterior(
        context).quality_std[0]


def test_the_state_round_trips_through_json() -> None:
    rng = np.random.default_rng(4)
    learner = _learner()
    estimates = Estimates(MODELS, rng.random((80, 3)), rng.random((80, 3)) * 1e-3)
    contexts = learner.contexts(_prompts(80), estimates)
    for context in contexts[:60]:
        decision = learner.decide(context, 10.0)
        learner.update(decision.model, context, float(rng.random() < 0.6),
                       float(rng.random() * 1e-3))
    state = json.loads(json.dumps(learner.to_state()))
    restored = OnlineLearner.from_state(state)
    for context in contexts[60:]:
        a, b = learner.posterior(context), restored.posterior(context)
        np.testing.assert_allclose(a.quality, b.quality)
        np.testing.assert_allclose(a.quality_std, b.quality_std)
        np.testing.assert_allclose(a.cost, b.cost)
        assert learner.decide(context, 10.0).index == restored.decide(context, 10.0).index
    kept = Context.from_state(json.loads(json.dumps(contexts[0].to_state())))
    for name in ("prompt", "quality", "cost"):
        np.testing.assert_array_equal(getattr(kept, name), getattr(contexts[0], name))
    assert kept.models == contexts[0].models
    earlier = {"models": list(contexts[0].models), "prompt": pack(contexts[0].prompt),
               "quality": pack(contexts[0].quality), "cost": pack(contexts[0].cost)}
    np.testing.assert_array_equal(Context.from_state(earlier).cost, contexts[0].cost)
    with pytest.raises(ValueError, match="holds 3 values"):
        Context.from_state([contexts[0].models, Context((), np.zeros(3), np.zeros(0),
                                                        np.zeros(0)).to_state()[1]])
    with pytest.raises(ValueError, match="not packed values"):
        Context.from_state([contexts[0].models, "@@"])
    with pytest.raises(ValueError):
        OnlineLearner.from_state({**state, "version": 99})
    with pytest.raises(ValueError):
        OnlineLearner.from_state({**state, "quality": {**state["quality"], "mean": [[0.0]]}})
    with pytest.raises(ValueError, match="'cov' is not a packed array"):
        OnlineLearner.from_state(
            {**state, "quality": {**state["quality"], "cov": {"shape": [1], "base64": "@@"}}})
    with pytest.raises(ValueError, match="names a model twice"):
        OnlineLearner.from_state({**state, "models": ["a", "a", "b"]})
    with pytest.raises(ValueError, match="different number of models"):
        OnlineLearner.from_state({**state, "models": ["a", "b"]})


def test_a_state_saved_with_lists_of_floats_still_loads_exactly() -> None:
    """Version 1 kept arrays as lists: a gateway upgraded over its old snapshot resumes
    with the very same beliefs, and packed arrays are the arrays' exact bytes."""
    rng = np.random.default_rng(6)
    learner = _learner()
    estimates = Estimates(MODELS, rng.random((40, 3)), rng.random((40, 3)) * 1e-3)
    contexts = learner.contexts(_prompts(40), estimates)
    for context in contexts[:30]:
        learner.update(learner.decide(context, 10.0).model, context,
                       float(rng.random() < 0.5), float(rng.random() * 1e-3))
    packed = learner.to_state()
    as_lists = {**packed, "version": 1, **{
        part: {key: (getattr(getattr(learner, part), key).tolist()
                     if isinstance(value, dict) else value)
               for key, value in packed[part].items()}
        for part in ("quality", "shared", "cost")}}
    assert isinstance(as_lists["quality"]["cov"], list)
    old, new = (OnlineLearner.from_state(json.loads(json.dumps(s))) for s in (as_lists, packed))
    for context in contexts[30:]:
        a, b, c = (x.posterior(context) for x in (learner, old, new))
        np.testing.assert_array_equal(a.quality, b.quality)
        np.testing.assert_array_equal(a.quality, c.quality)
        np.testing.assert_array_equal(a.quality_std, c.quality_std)
        np.testing.assert_array_equal(a.cost, b.cost)


def test_a_state_saved_with_one_change_detector_still_loads() -> None:
    """States saved before the likelihood-ratio detector hold two CUSUM statistics per
    model; they load with the new detector's starting from zero."""
    learner = _learner()
    context = learner.contexts(_prompts(1), _estimates(1, (0.5, 0.6, 0.7), (1.0,) * 3))[0]
    for _ in range(5):
        learner.update("a", context, 0.0)
    state = json.loads(json.dumps(learner.to_state()))
    old = {key: pack(unpack(state["quality"][key], key)[:, :2]) for key in ("cusum", "runs")}
    restored = OnlineLearner.from_state({**state, "quality": {**state["quality"], **old}})
    np.testing.assert_array_equal(restored.quality.cusum[:, :2], learner.quality.cusum[:, :2])
    assert not restored.quality.cusum[:, 2:].any()
    np.testing.assert_allclose(restored.posterior(context).quality,
                               learner.posterior(context).quality)


def test_a_replay_reads_only_the_chosen_models_outcomes() -> None:
    n = 200
    rng = np.random.default_rng(5)
    outcomes = StreamOutcomes(MODELS, rng.random((n, 3)), rng.random((n, 3)) * 1e-3)
    estimates = Estimates(MODELS, rng.random((n, 3)), rng.random((n, 3)) * 1e-3)
    result = replay(estimates, outcomes, ReplaySettings(cost_weight=10.0, feedback_rate=0.3,
                                                        seed=1), _learner(), _prompts(n))
    assert outcomes.reads == [(step, int(result.choice[step])) for step in range(n)]
    assert 0.2 < result.feedback.mean() < 0.4


def test_the_expected_cost_is_the_mean_bill_not_the_geometric_one() -> None:
    """Bills scattered around the router's estimate (log-normal, std 0.3) cost on average
    exp(0.3**2 / 2) = 1.046 times it; exp(mean log ratio) alone would say 1.0. Exact bills
    leave the estimate as it is."""
    rng = np.random.default_rng(8)
    estimates = _estimates(1, (0.5, 0.5, 0.5), (1e-3, 1e-3, 1e-3))
    context = _learner().context(_prompts(1)[0], estimates)
    scattered, exact = _learner(), _learner()
    believed = []  # the filter tracks recent bills (price changes): average its belief
    for step in range(3000):
        scattered.update("a", context, cost=1e-3 * float(np.exp(rng.normal(0.0, 0.3))))
        exact.update("a", context, cost=1e-3)
        if step >= 1000:
            believed.append(scattered.posterior(context).cost[0])
    assert np.mean(believed) == pytest.approx(1.046e-3, rel=0.02)
    assert exact.posterior(context).cost[0] == pytest.approx(1e-3, rel=1e-6)
    state = scattered.to_state()
    restored = OnlineLearner.from_state(json.loads(json.dumps(state)))
    assert restored.posterior(context).cost[0] == scattered.posterior(context).cost[0]
    # a state saved before the spread was kept loads, with no spread yet
    older = {k: v for k, v in state.items() if not k.startswith("cost_spread")}
    assert OnlineLearner.from_state(older).posterior(context).cost[0] == pytest.approx(
        scattered.posterior(context).cost[0] / np.exp(0.5 * scattered.cost_spread[0]))


def _splitmix64(value: int) -> int:
    """splitmix64's finaliser in Python integers: the reference the projection must match."""
    mask = 2**64 - 1
    z = (value + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


@pytest.mark.parametrize("seed", [0, 3, 2**40 + 7])
def test_the_prompt_projection_is_splitmix64_signs_for_any_seed(seed: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a seed's wrapping product must not warn the user
        projection = PromptProjection(DIM, 4, seed)
    offset = (seed % 2**32) * 0x9E3779B97F4A7C15
    for index, value in enumerate(projection.matrix.ravel()):
        negative = _splitmix64((index + offset) & (2**64 - 1)) >> 63
        assert value == (-0.5 if negative else 0.5)
