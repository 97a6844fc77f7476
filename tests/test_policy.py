"""The policy against hand-computed examples: utilities, choices, plans, sweeps, calibration.

Costs are in whole "dollars" so the arithmetic in the comments stays readable; the policy
only ever sees ratios of quality to cost. Utilities carry a 1e-6 x cost tie-break (so exact
quality ties go to the cheaper model), which is why comparisons use ``abs=1e-5``.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from switchman.estimates import Estimates
from switchman.policy import (
    Constraints,
    calibrate_cost_weight,
    choose,
    cost_weight_sweep,
    eligibility,
    plan,
    utilities,
)

MODELS = ("cheap", "mid", "strong")
# prompt 0: q .5 .7 .9 at cost 1 2 4;   prompt 1: q .6 .6 .95 at cost 1 3 5
QUALITY = np.array([[0.5, 0.7, 0.9], [0.6, 0.6, 0.95]])
COST = np.array([[1.0, 2.0, 4.0], [1.0, 3.0, 5.0]])
CHEAP, MID, STRONG = 0, 1, 2


@pytest.fixture()
def est() -> Estimates:
    return Estimates(MODELS, QUALITY.copy(), COST.copy())


# --------------------------------------------------------------------------- utilities


def test_utilities_by_hand(est: Estimates) -> None:
    # w = 0.1: p0 .5-.1=.4, .7-.2=.5, .9-.4=.5;  p1 .6-.1=.5, .6-.3=.3, .95-.5=.45
    util = utilities(est, 0.1)
    assert util == pytest.approx(np.array([[0.4, 0.5, 0.5], [0.5, 0.3, 0.45]]), abs=1e-5)
    # w = 0 is quality itself (up to the tie-break)
    assert utilities(est, 0.0) == pytest.approx(QUALITY, abs=1e-5)


def test_utilities_mask_gives_minus_inf(est: Estimates) -> None:
    mask = np.array([[True, False, True], [False, False, True]])
    util = utilities(est, 0.1, mask)
    assert np.isneginf(util[~mask]).all()
    assert np.isfinite(util[mask]).all()
    assert util[mask] == pytest.approx(utilities(est, 0.1)[mask])


def test_utilities_rejects_negative_weight(est: Estimates) -> None:
    with pytest.raises(ValueError, match="cost_weight"):
        utilities(est, -0.01)
    with pytest.raises(ValueError, match="cost_weight"):
        choose(est, -1.0)


def test_utilities_rejects_nan_weight(est: Estimates) -> None:
    # NaN would pass a `< 0` check and make choose() pick model 0 everywhere
    with pytest.raises(ValueError, match="cost_weight"):
        utilities(est, float("nan"))
    with pytest.raises(ValueError, match="cost_weight"):
        choose(est, float("nan"))


# --------------------------------------------------------------------------- choose / plan


def test_choose_by_hand(est: Estimates) -> None:
    assert choose(est, 0.0).tolist() == [STRONG, STRONG]
    # w = 0.1, p0: mid and strong both .5 -> the tie goes to the cheaper mid; p1: cheap (.5)
    assert choose(est, 0.1).tolist() == [MID, CHEAP]
    # w = 0.05: p0 .45 .6 .7 -> strong; p1 .55 .45 .7 -> strong
    assert choose(est, 0.05).tolist() == [STRONG, STRONG]
    assert choose(est, 1.0).tolist() == [CHEAP, CHEAP]


def test_exact_tie_goes_to_the_cheaper_model() -> None:
    # Same quality: the cheaper one wins at w = 0, whichever column comes first.
    for order in ((0, 1), (1, 0)):
        q = np.array([[0.8, 0.8]])
        c = np.array([[2.0, 1.0]])[:, order]
        e = Estimates(("x", "y"), q, c)
        assert choose(e, 0.0)[0] == int(np.argmin(c[0]))
        assert plan(e, 0.0) == [e.models[int(np.argmin(c[0]))], e.models[int(np.argmax(c[0]))]]


def test_choose_minus_one_when_nothing_is_eligible(est: Estimates) -> None:
    mask = np.array([[False, False, False], [True, True, False]])
    # p0: nothing allowed; p1 at w=0: cheap and mid both .6 -> cheaper wins
    assert choose(est, 0.0, mask).tolist() == [-1, CHEAP]
    assert choose(est, 0.0, np.zeros_like(mask)).tolist() == [-1, -1]


def test_choose_respects_mask(est: Estimates) -> None:
    mask = np.array([[True, True, False], [True, False, False]])
    # p0 w=0 without strong: mid (.7); p1 only cheap
    assert choose(est, 0.0, mask).tolist() == [MID, CHEAP]


def test_plan_orders_by_utility(est: Estimates) -> None:
    one = est.rows(slice(0, 1))
    # w = .1: mid .499998 > strong .499996 (tie-break) > cheap .4
    assert plan(one, 0.1) == ["mid", "strong", "cheap"]
    assert plan(one, 0.0) == ["strong", "mid", "cheap"]
    assert plan(one, 1.0) == ["cheap", "mid", "strong"]


def test_plan_drops_ineligible_models(est: Estimates) -> None:
    one = est.rows(slice(0, 1))
    assert plan(one, 0.1, np.array([[True, False, True]])) == ["strong", "cheap"]
    assert plan(one, 0.1, np.array([[False, False, False]])) == []


def test_plan_needs_exactly_one_prompt(est: Estimates) -> None:
    with pytest.raises(ValueError, match="exactly one prompt"):
        plan(est, 0.1)


def test_estimates_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="n_prompts, n_models"):
        Estimates(("a", "b"), np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n_prompts, n_models"):
        Estimates(("a", "b", "c"), np.zeros((3, 2)), np.zeros((3, 2)))


# --------------------------------------------------------------------------- constraints


def test_constraints_allowed_excluded_max_cost(est: Estimates) -> None:
    full = np.ones((2, 3), dtype=bool)
    assert (eligibility(est) == full).all()
    assert (eligibility(est, Constraints()) == full).all()

    allowed = eligibility(est, Constraints.of(allowed_models=["cheap", "strong"]))
    assert allowed.tolist() == [[True, False, True]] * 2

    excluded = eligibility(est, Constraints.of(excluded_models={"strong"}))
    assert excluded.tolist() == [[True, True, False]] * 2

    both = eligibility(est, Constraints.of(allowed_models=["cheap", "strong"],
                                           excluded_models=["strong"]))
    assert both.tolist() == [[True, False, False]] * 2

    # max cost 3 is inclusive: p0 costs 1 2 4, p1 costs 1 3 5
    capped = eligibility(est, Constraints.of(max_cost_usd=3.0))
    assert capped.tolist() == [[True, True, False], [True, True, False]]
    capped = eligibility(est, Constraints.of(max_cost_usd=2.5))
    assert capped.tolist() == [[True, True, False], [True, False, False]]
    # an unknown model in allowed_models allows nothing
    assert not eligibility(est, Constraints.of(allowed_models=["nope"])).any()


def test_eligibility_with_extra_mask(est: Estimates) -> None:
    # the caller's context-window mask: p1 fits only the strong model
    extra = np.array([[True, True, True], [False, False, True]])
    mask = eligibility(est, Constraints.of(max_cost_usd=4.5), extra)
    assert mask.tolist() == [[True, True, True], [False, False, False]]
    assert choose(est, 0.0, mask).tolist() == [STRONG, -1]
    mask = eligibility(est, None, extra)
    assert mask.tolist() == extra.tolist()
    assert choose(est, 1.0, mask).tolist() == [CHEAP, STRONG]


def test_constraints_of_builds_frozensets() -> None:
    c = Constraints.of(allowed_models=["a", "a", "b"], excluded_models=("c",), max_cost_usd=1.0)
    assert c.allowed_models == frozenset({"a", "b"})
    assert c.excluded_models == frozenset({"c"})
    assert Constraints.of().allowed_models is None


# --------------------------------------------------------------------------- sweep


def _random_estimates(n: int, m: int, seed: int) -> Estimates:
    rng = np.random.default_rng(seed)
    q = rng.uniform(0, 1, (n, m))
    c = rng.uniform(0.5, 1.5, (n, m)) * np.geomspace(1e-5, 1e-2, m)  # distinct model prices
    return Estimates(tuple(f"m{j}" for j in range(m)), q, c)


def test_sweep_two_model_break_even_by_hand() -> None:
    # one prompt: q .5 / .9 at cost 1 / 3 -> break-even w = .4 / 2 = .2; top = .2 * 1.01.
    # Predicted spend is 1 for w >= .2 and 3 below, so any inner spend target between 1 and
    # 3 lands on the break-even itself (the smallest w that still spends 1).
    e = Estimates(("a", "b"), np.array([[0.5, 0.9]]), np.array([[1.0, 3.0]]))
    assert cost_weight_sweep(e, 2) == pytest.approx([0.202, 0.0])
    assert cost_weight_sweep(e, 3) == pytest.approx([0.202, 0.2, 0.0], abs=1e-5)
    w = cost_weight_sweep(e, 3)
    assert [choose(e, float(x))[0] for x in w] == [0, 0, 1]


def test_sweep_points_by_hand_on_a_spend_staircase() -> None:
    # 4 prompts, a costs 1 and b 2; b is better by .1 .2 .3 .4 -> break-evens .1 .2 .3 .4.
    # Mean spend: 1 (w > .4), 1.25, 1.5, 1.75, 2 (w < .1). With 6 points the 4 inner spend
    # targets are 1 + 1/3, 1 + 2/3 (linear) and 2^(1/3), 2^(2/3) (geometric) = 1.26 1.33
    # 1.59 1.67; the smallest w within each is .3 (spend 1.25) twice and .2 (1.5) twice;
    # repeats are nudged down by 3% so that the sweep keeps 6 distinct points.
    q = np.column_stack([np.full(4, 0.5), 0.5 + np.array([0.1, 0.2, 0.3, 0.4])])
    e = Estimates(("a", "b"), q, np.tile([1.0, 2.0], (4, 1)))
    w = cost_weight_sweep(e, 6)
    assert w == pytest.approx([0.404, 0.3, 0.3 * 0.97, 0.2, 0.2 * 0.97, 0.0], abs=1e-5)
    spend = [float(np.where(choose(e, float(x)) == 1, 2.0, 1.0).mean()) for x in w]
    assert spend == [1.0, 1.25, 1.5, 1.5, 1.75, 2.0]


def test_sweep_spreads_points_evenly_in_spend() -> None:
    e = _random_estimates(400, 6, seed=2)
    rows = np.arange(e.n_prompts)
    spend = np.array([e.cost[rows, choose(e, float(x))].mean() for x in cost_weight_sweep(e, 25)])
    assert np.all(np.diff(spend) >= 0)
    # no stretch of the spend range is left without points: the biggest step between
    # neighbouring points is a small share of the whole range (11 linear steps -> ~1/12)
    assert np.diff(spend).max() <= 0.15 * (spend[-1] - spend[0])


@pytest.mark.parametrize("n_points", [2, 3, 7, 25, 60])
def test_sweep_has_exactly_n_points_non_increasing_to_zero(n_points: int) -> None:
    e = _random_estimates(300, 5, seed=n_points)
    w = cost_weight_sweep(e, n_points)
    assert w.shape == (n_points,)
    assert np.all(np.diff(w) <= 0)
    assert w[-1] == 0.0
    assert np.all(w >= 0)
    assert w[0] > 0


def test_sweep_runs_from_cheapest_to_best_quality() -> None:
    e = _random_estimates(400, 6, seed=1)
    w = cost_weight_sweep(e, 25)
    assert (choose(e, float(w[0])) == np.argmin(e.cost, axis=1)).all()
    assert (choose(e, float(w[-1])) == np.argmax(e.quality, axis=1)).all()
    # Along the sweep each prompt's chosen (predicted) cost and quality can only rise.
    rows = np.arange(e.n_prompts)
    picks = np.stack([choose(e, float(x)) for x in w])
    chosen_cost, chosen_q = e.cost[rows, picks], e.quality[rows, picks]
    assert np.all(np.diff(chosen_cost, axis=0) >= 0)
    assert np.all(np.diff(chosen_q, axis=0) >= 0)
    # and the sweep actually moves: many distinct decisions in between
    assert len({tuple(p) for p in picks}) >= 15


def test_sweep_spaces_out_tied_break_evens() -> None:
    # every prompt has the same break-even (.1 / 1): the quantiles all coincide
    n = 50
    e = Estimates(("a", "b"), np.tile([0.5, 0.6], (n, 1)), np.tile([1.0, 2.0], (n, 1)))
    w = cost_weight_sweep(e, 10)
    assert len(w) == 10 and len(np.unique(w)) == 10
    assert np.all(np.diff(w) < 0)


def test_sweep_ignores_costs_that_differ_by_rounding_alone() -> None:
    # b and c cost the same but for 1e-19 (a trained model and one added by profile at
    # the same price): the sweep must still trade a off against them, point by point
    rng = np.random.default_rng(0)
    n = 200
    quality = np.column_stack([rng.uniform(0.2, 0.5, n), rng.uniform(0.4, 0.9, n),
                               rng.uniform(0.4, 0.9, n)])
    cost = np.column_stack([np.full(n, 1e-5), np.full(n, 1.8e-4), np.full(n, 1.8e-4)])
    cost[:, 2] += 1e-19 * (rng.random(n) < 0.5)
    e = Estimates(("a", "b", "c"), quality, cost)
    w = cost_weight_sweep(e, 21)
    spend = [float(cost[np.arange(n), choose(e, float(x))].mean()) for x in w]
    assert len({round(s, 9) for s in spend}) >= 10  # not the cheapest point and then the dearest


def test_sweep_without_trade_offs_still_has_n_points() -> None:
    # the better model is also the cheaper one: no break-even at all
    e = Estimates(("a", "b"), np.array([[0.9, 0.5], [0.7, 0.2]]),
                  np.array([[1.0, 2.0], [1.0, 5.0]]))
    w = cost_weight_sweep(e, 21)
    assert w.shape == (21,) and w[-1] == 0.0 and np.all(np.diff(w) <= 0)
    assert all((choose(e, float(x)) == 0).all() for x in w)


def test_sweep_rejects_fewer_than_two_points(est: Estimates) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        cost_weight_sweep(est, 1)


def test_sweep_default_has_at_least_20_points(est: Estimates) -> None:
    default = inspect.signature(cost_weight_sweep).parameters["n_points"].default
    assert default >= 20
    assert len(cost_weight_sweep(est)) == default


def test_sweep_point_zero_is_cheapest_on_big_batches() -> None:
    # The sweep samples 2000 prompts to place its inner points; the top weight must still
    # cover a prompt outside the sample whose break-even is far above everyone else's.
    n = 3000
    sample = set(np.random.default_rng(0).choice(np.arange(n), 2000, replace=False).tolist())
    outlier = next(i for i in range(n) if i not in sample)
    q, c = np.tile([0.5, 0.6], (n, 1)), np.tile([1.0, 2.0], (n, 1))
    q[outlier] = [0.0, 1.0]  # break-even 1.0, ten times everyone else's 0.1
    e = Estimates(("a", "b"), q, c)
    w = cost_weight_sweep(e, 25)
    assert (choose(e, float(w[0])) == 0).all()


# --------------------------------------------------------------------------- calibration

# Two models, predicted cost 1 (weak) / 10 (strong) everywhere. Predicted quality gaps give
# break-evens p0 .4/9, p1 .2/9, p2 .1/9; p3 never prefers strong. Lowering w sends p0, then
# p1, then p2 to strong:  states S0 {} S1 {p0} S2 {p0,p1} S3 {p0,p1,p2}.
CAL_Q = np.array([[0.5, 0.9], [0.5, 0.7], [0.5, 0.6], [0.5, 0.4]])
CAL_C = np.tile([1.0, 10.0], (4, 1))
# Observed outcomes (what actually happened on the calibration set):
OBS_Q = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
# observed mean (cost, quality): S0 (1, .5)  S1 (3.25, .75)  S2 (5.5, 1.0)  S3 (7.75, 1.0)
# predicted mean quality:        S0 .5       S1 .6           S2 .65         S3 .675
STATES = {0: [0, 0, 0, 0], 1: [1, 0, 0, 0], 2: [1, 1, 0, 0], 3: [1, 1, 1, 0]}


@pytest.fixture()
def cal() -> Estimates:
    return Estimates(("weak", "strong"), CAL_Q.copy(), CAL_C.copy())


def _state(e: Estimates, w: float) -> int:
    picks = choose(e, w).tolist()
    return next(s for s, p in STATES.items() if p == picks)


@pytest.mark.parametrize(("target", "state"), [(1.0, 0), (3.0, 0), (3.25, 1), (5.0, 1),
                                               (6.0, 2), (7.75, 3), (100.0, 3)])
def test_calibrate_target_cost(cal: Estimates, target: float, state: int) -> None:
    w = calibrate_cost_weight(cal, target_cost=target, observed_quality=OBS_Q,
                              observed_cost=CAL_C)
    assert w >= 0
    assert _state(cal, w) == state


def test_calibrate_target_cost_uses_observed_cost(cal: Estimates) -> None:
    # observed: the strong model really costs 2 on p0 and p1: S2 costs (2+2+1+1)/4 = 1.5
    obs_c = CAL_C.copy()
    obs_c[[0, 1], 1] = 2.0
    w = calibrate_cost_weight(cal, target_cost=1.5, observed_quality=OBS_Q, observed_cost=obs_c)
    assert _state(cal, w) == 2
    # with predicted costs only S0 fits 1.5
    assert _state(cal, calibrate_cost_weight(cal, target_cost=1.5)) == 0


@pytest.mark.parametrize(("target", "state"), [(0.5, 0), (0.6, 1), (0.75, 1), (0.9, 2),
                                               (1.0, 2)])
def test_calibrate_target_quality_is_cheapest_reaching_it(cal: Estimates, target: float,
                                                         state: int) -> None:
    w = calibrate_cost_weight(cal, target_quality=target, observed_quality=OBS_Q,
                              observed_cost=CAL_C)
    assert _state(cal, w) == state


def test_calibrate_target_quality_predicted_vs_observed(cal: Estimates) -> None:
    # predicted quality never reaches .75 (best is S3 at .675): falls back to w = 0
    assert calibrate_cost_weight(cal, target_quality=0.75) == 0.0
    assert _state(cal, 0.0) == 3
    # predicted .58 is first reached at S1 (.6)
    assert _state(cal, calibrate_cost_weight(cal, target_quality=0.58)) == 1
    # unreachable even with observed outcomes: w = 0 (the best quality on offer)
    assert calibrate_cost_weight(cal, target_quality=1.01, observed_quality=OBS_Q) == 0.0


@pytest.mark.parametrize(("share", "state"), [(0.0, 0), (0.25, 1), (0.3, 1), (0.5, 2),
                                              (0.74, 2), (0.75, 3), (1.0, 3)])
def test_calibrate_strong_share(cal: Estimates, share: float, state: int) -> None:
    # strong = best observed mean quality (strong .75 vs weak .5)
    w = calibrate_cost_weight(cal, strong_share=share, observed_quality=OBS_Q)
    assert _state(cal, w) == state
    assert np.mean(choose(cal, w) == 1) <= share


def test_calibrate_strong_share_follows_the_observed_strong_model(cal: Estimates) -> None:
    # "Strong" is the model with the best observed mean quality. Here that is "weak" (.5 vs
    # 0), which every operating point calls, so a 0 share cannot be met: the cheapest point.
    flipped = 1.0 - OBS_Q
    flipped[:, 1] = 0.0
    w = calibrate_cost_weight(cal, strong_share=0.0, observed_quality=flipped)
    assert w == pytest.approx(cost_weight_sweep(cal, 200)[0])


def test_calibrate_argument_errors(cal: Estimates, est: Estimates) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        calibrate_cost_weight(cal)
    with pytest.raises(ValueError, match="exactly one"):
        calibrate_cost_weight(cal, target_cost=1.0, target_quality=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        calibrate_cost_weight(cal, target_cost=1.0, target_quality=0.5, strong_share=0.5)
    with pytest.raises(ValueError, match="two-model"):
        calibrate_cost_weight(est, strong_share=0.5)
    with pytest.raises(ValueError, match="at least 2"):
        calibrate_cost_weight(cal, target_cost=1.0, n_points=1)


def test_calibrate_respects_mask(cal: Estimates) -> None:
    # strong is not allowed for p0: S1-like states cannot happen; the cheapest way to reach
    # observed quality .75 is then p1 on strong ({p1}: (0+1+1+1)/4 = .75)
    mask = np.ones((4, 2), dtype=bool)
    mask[0, 1] = False
    w = calibrate_cost_weight(cal, target_quality=0.75, observed_quality=OBS_Q, mask=mask)
    assert choose(cal, w, mask).tolist() == [0, 1, 0, 0]


def test_calibrate_ignores_prompts_with_no_eligible_model() -> None:
    # choose() == -1 must not be read as "the last model" (numpy's index -1)
    e = Estimates(("a", "b"), np.array([[0.5, 0.9], [0.5, 0.9]]),
                  np.array([[1.0, 10.0], [1.0, 10.0]]))
    mask = np.array([[True, True], [False, False]])  # p1 cannot be routed at all
    obs_c = np.array([[1.0, 10.0], [1.0, 1000.0]])
    # Whether p1 counts as 0 dollars or is left out, sending p0 to b costs <= 10 on average;
    # charging p1 model b's 1000 dollars would make even the cheapest point "exceed" 10.
    w = calibrate_cost_weight(e, target_cost=10.0, observed_cost=obs_c, mask=mask)
    assert choose(e, w, mask).tolist() == [1, -1]


def test_selected_models_decide_like_an_allowed_list() -> None:
    # the policy sees only the Estimates container: restricting the columns and restricting
    # eligibility must give the same decisions
    e = _random_estimates(50, 4, seed=3)
    sub = e.select_models(["m3", "m1"])
    mask = eligibility(e, Constraints.of(allowed_models=["m1", "m3"]))
    for w in cost_weight_sweep(e, 9):
        by_columns = np.asarray(sub.models)[choose(sub, float(w))]
        by_mask = np.asarray(e.models)[choose(e, float(w), mask)]
        assert (by_columns == by_mask).all()
    assert plan(sub.rows(slice(0, 1)), 0.0) == plan(e.rows(slice(0, 1)), 0.0, mask[:1])
