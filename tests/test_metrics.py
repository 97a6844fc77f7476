"""Metrics against examples computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from switchman.eval.metrics import (
    aiq,
    apgr,
    best_single,
    cpt,
    iso_quality_cost_ratio,
    max_quality,
    operating_point,
    oracle_picks,
    oracle_point,
    quality_at_cost,
    single_model_points,
    summarize,
    upper_hull,
)

# Hull example: (2, .6) lies under the chord (1, .5)-(3, .9) (0.7 at cost 2) and
# (2.5, .55) is dominated by the cheaper (2, .6), so the hull is (1,.5) (3,.9) (4,.95)
# with slopes 0.2 then 0.05 (concave).
POINTS = [(3.0, 0.9), (2.0, 0.6), (1.0, 0.5), (4.0, 0.95), (2.5, 0.55)]

# Three models A, B, C over four prompts.
MODELS = ["A", "B", "C"]
QUALITY = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=float)
COST = np.array([[1, 2, 4], [1, 2, 4], [1, 2, 4], [1, 2, 8]], dtype=float)
# Means: A (1, .25), B (2, .5), C (5, .75). Best single C; most expensive 5.


def test_upper_hull_drops_dominated_and_sub_chord_points() -> None:
    c, q = upper_hull(POINTS)
    np.testing.assert_allclose(c, [1, 3, 4])
    np.testing.assert_allclose(q, [0.5, 0.9, 0.95])


def test_upper_hull_duplicate_costs_keep_best_and_single_point() -> None:
    c, q = upper_hull([(2, 0.6), (1, 0.3), (1, 0.5)])
    np.testing.assert_allclose(c, [1, 2])
    np.testing.assert_allclose(q, [0.5, 0.6])
    c, q = upper_hull([(2, 0.4)])
    assert c.tolist() == [2] and q.tolist() == [0.4]
    # A pricier point that is not better adds nothing; collinear middle points are dropped.
    c, q = upper_hull([(1, 0.5), (3, 0.5), (2, 0.6), (3, 0.7)])
    np.testing.assert_allclose(c, [1, 3])
    np.testing.assert_allclose(q, [0.5, 0.7])


def test_upper_hull_rejects_bad_input() -> None:
    for bad in ([], [(1, 2, 3)], [(-1, 0.5)], [(1, math.nan)]):
        with pytest.raises(ValueError):
            upper_hull(bad)


def test_aiq_hand_computed() -> None:
    # Area from the cheapest hull point: 1..3 trapezoid (.5+.9)/2*2 = 1.4, 3..4 (.9+.95)/2
    # = .925, flat at .95 from 4 to 5 = .95; total 3.275 / 5 = 0.655.
    assert aiq(POINTS, 5.0) == pytest.approx(0.655)
    # Held flat to the left instead: + .5 * 1 -> 3.775 / 5.
    assert aiq(POINTS, 5.0, extend_left=True) == pytest.approx(0.755)
    # Cut at 3.5: 1.4 + (.9 + .925)/2 * .5 = 1.85625, / 3.5.
    assert aiq(POINTS, 3.5) == pytest.approx(1.85625 / 3.5)


def test_aiq_single_point_and_out_of_range() -> None:
    # One point (2, .8) up to 4: flat .8 over [2, 4] = 1.6, / 4 = .4.
    assert aiq([(2, 0.8)], 4.0) == pytest.approx(0.4)
    assert aiq([(2, 0.8)], 4.0, extend_left=True) == pytest.approx(0.8)
    assert aiq([(5, 0.9)], 4.0) == 0.0  # cheapest point beyond max_cost
    assert aiq([(0, 0.7)], 2.0) == pytest.approx(0.7)  # free model: flat from 0
    with pytest.raises(ValueError):
        aiq(POINTS, 0.0)


def test_aiq_ignores_order_and_dominated_points() -> None:
    shuffled = [POINTS[i] for i in (4, 2, 0, 3, 1)]
    assert aiq(shuffled, 5.0) == aiq(POINTS, 5.0)
    assert aiq([*POINTS, (4.5, 0.2)], 5.0) == pytest.approx(0.655)


def test_iso_quality_cost_ratio_interpolates_on_the_hull() -> None:
    # 0.8 on segment (1,.5)-(3,.9): fraction .3/.4 = .75 -> cost 2.5; / 4 = .625.
    assert iso_quality_cost_ratio(POINTS, 0.8, 4.0) == pytest.approx(0.625)
    assert iso_quality_cost_ratio(POINTS, 0.95, 4.0) == pytest.approx(1.0)  # a vertex
    assert iso_quality_cost_ratio(POINTS, 0.4, 4.0) == pytest.approx(0.25)  # cheapest point
    assert iso_quality_cost_ratio(POINTS, 0.96, 4.0) == math.inf  # never reached
    # Float noise at the target still counts as reaching it.
    assert iso_quality_cost_ratio([(1, 0.5), (2, 0.7 - 1e-15)], 0.7, 2.0) == pytest.approx(1.0)


def test_quality_at_cost() -> None:
    assert quality_at_cost(POINTS, 2.0) == pytest.approx(0.7)  # on the chord, not 0.6
    assert quality_at_cost(POINTS, 10.0) == pytest.approx(0.95)  # flat after the last point
    assert quality_at_cost(POINTS, 1.0) == pytest.approx(0.5)
    assert math.isnan(quality_at_cost(POINTS, 0.5))  # nothing that cheap
    assert max_quality(POINTS) == 0.95


def test_single_best_oracle_and_operating_point() -> None:
    singles = single_model_points(QUALITY, COST, MODELS)
    assert singles == {"A": (1.0, 0.25), "B": (2.0, 0.5), "C": (5.0, 0.75)}
    assert best_single(QUALITY, COST, MODELS) == ("C", 5.0, 0.75)
    # Oracle: p0 all right -> A ($1); p1 B ($2, cheaper than C); p2 C ($4); p3 all wrong
    # -> cheapest A ($1). Mean cost 8/4 = 2, quality 3/4.
    assert oracle_picks(QUALITY, COST).tolist() == [0, 1, 2, 0]
    assert oracle_point(QUALITY, COST) == (2.0, 0.75)
    assert operating_point(QUALITY, COST, np.array([2, 2, 2, 2])) == (5.0, 0.75)
    assert operating_point(QUALITY, COST, np.array([0, 1, 2, 0])) == (2.0, 0.75)
    with pytest.raises(ValueError):
        operating_point(QUALITY, COST, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError):
        operating_point(QUALITY, COST, np.array([0.0, 1.0, 2.0, 0.0]))


def test_best_single_ties_go_to_the_cheaper() -> None:
    quality = np.array([[1.0, 1.0], [0.0, 0.0]])
    cost = np.array([[3.0, 1.0], [3.0, 1.0]])
    assert best_single(quality, cost, ["pricey", "cheap"]) == ("cheap", 1.0, 0.5)


def test_apgr_and_cpt_hand_computed() -> None:
    # q_weak .5, q_strong .9: PGR at shares .2/.5/.8 = .5/.75/.9, anchored at (0,0), (1,1).
    # Trapezoids: .05 + .1875 + .2475 + .19 = .675.
    shares, quals = [0.8, 0.2, 0.5], [0.86, 0.7, 0.8]  # unsorted on purpose
    assert apgr(shares, quals, 0.5, 0.9) == pytest.approx(0.675)
    assert cpt(shares, quals, 0.5, 0.9, 0.5) == pytest.approx(0.2)
    # .8 between (.5, .75) and (.8, .9): fraction 1/3 -> share .6.
    assert cpt(shares, quals, 0.5, 0.9, 0.8) == pytest.approx(0.6)
    # Random routing is the diagonal: APGR .5, CPT(50%) .5.
    assert apgr([0, 0.5, 1], [0.5, 0.7, 0.9], 0.5, 0.9) == pytest.approx(0.5)
    assert cpt([0.5], [0.7], 0.5, 0.9, 0.5) == pytest.approx(0.5)
    assert cpt([0.5], [0.7], 0.5, 0.9, 1.1) == math.inf
    with pytest.raises(ValueError):
        apgr([0.5], [0.7], 0.6, 0.6)


def test_summarize_hand_computed_and_json_safe() -> None:
    # Router hull (1,.25) (2,.6) (5,.75); AIQ area .425 + 2.025 = 2.45, / 5 = .49.
    # iso: .75 first reached at cost 5 -> ratio 1. q@1.25 = .25 + .25*.35 = .3375;
    # q@2.5 = .6 + (.5/3)*.15 = .625. A never-good router gets None for iso.
    summary = summarize(QUALITY, COST, MODELS, {
        "r": [(5, 0.75), (1, 0.25), (2, 0.6)],
        "bad": [(3, 0.3)],
    })
    r = summary["routers"]["r"]
    assert r["aiq"] == pytest.approx(0.49)
    assert r["iso_quality_cost_ratio"] == pytest.approx(1.0)
    assert r["quality_at_0.25x"] == pytest.approx(0.3375)
    assert r["quality_at_0.5x"] == pytest.approx(0.625)
    assert r["max_quality"] == 0.75 and r["n_points"] == 3
    bad = summary["routers"]["bad"]
    assert bad["iso_quality_cost_ratio"] is None and bad["quality_at_0.25x"] is None
    assert "apgr" not in r  # three models: no two-model metrics
    assert summary["best_single"] == {"model": "C", "cost": 5.0, "quality": 0.75}
    assert summary["oracle"] == {"cost": 2.0, "quality": 0.75}
    assert summary["max_single_cost"] == 5.0
    # Singles hull (1,.25) (2,.5) (5,.75): .375 + 1.875 = 2.25, / 5 = .45.
    assert summary["single_frontier"]["aiq"] == pytest.approx(0.45)
    json.dumps(summary, allow_nan=False)


def test_summarize_two_models_adds_apgr_and_cpt() -> None:
    quality = np.array([[1, 1], [1, 1], [0, 1], [0, 0]], dtype=float)  # weak .5, strong .75
    cost = np.array([[0.1, 1.0]] * 4)
    picks = [np.zeros(4, int), np.array([0, 0, 1, 0]), np.ones(4, int)]
    points = [operating_point(quality, cost, p) for p in picks]
    assert points[1] == pytest.approx((0.325, 0.75))
    summary = summarize(quality, cost, ["weak", "strong"], {"r": points},
                        strong_shares={"r": [0.0, 0.25, 1.0]})
    r = summary["routers"]["r"]
    # PGR 0, 1, 1 at shares 0, .25, 1: area .125 + .75 = .875; CPT(50%) .125, CPT(80%) .2.
    assert r["apgr"] == pytest.approx(0.875)
    assert r["cpt50"] == pytest.approx(0.125)
    assert r["cpt80"] == pytest.approx(0.2)
    with pytest.raises(ValueError):
        summarize(quality, cost, ["weak", "strong"], {"r": points}, {"r": [0.0]})


def test_matrix_validation() -> None:
    with pytest.raises(ValueError):
        single_model_points(QUALITY, COST[:, :2], MODELS)
    with pytest.raises(ValueError):
        single_model_points(QUALITY, COST, ["A", "B"])
