"""Cost-quality metrics over outcome matrices (DESIGN "Metrics"); pure numpy, no I/O.

An outcome matrix pair is ``quality`` and ``cost``, both (n_prompts, n_models), column j
being ``models[j]``. A router's *operating point* is the (mean cost, mean quality) of its
per-prompt picks; a sweep of its cost weight gives a list of such points. Every metric on
points works on their non-decreasing concave hull, because a router can reach any mix of
two operating points by randomising between them per request, so the segments between hull
vertices are achievable too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

Point = tuple[float, float]


def _check_matrices(quality: ArrayLike, cost: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    q, c = np.asarray(quality, dtype=float), np.asarray(cost, dtype=float)
    if q.ndim != 2 or q.shape != c.shape or q.shape[0] == 0 or q.shape[1] == 0:
        raise ValueError(f"quality and cost must be the same non-empty 2-D shape: "
                         f"{q.shape} vs {c.shape}")
    if not (np.isfinite(q).all() and np.isfinite(c).all()):
        raise ValueError("quality and cost must be finite")
    return q, c


def single_model_points(quality: ArrayLike, cost: ArrayLike, models: Sequence[str]
                        ) -> dict[str, Point]:
    """Each model's (mean cost, mean quality) per prompt: the always-this-model baselines."""
    q, c = _check_matrices(quality, cost)
    if len(models) != q.shape[1]:
        raise ValueError(f"{len(models)} model names for {q.shape[1]} columns")
    return {m: (float(c[:, j].mean()), float(q[:, j].mean())) for j, m in enumerate(models)}


def best_single(quality: ArrayLike, cost: ArrayLike, models: Sequence[str]
                ) -> tuple[str, float, float]:
    """(model, mean cost, mean quality) of the highest mean quality; ties go to the cheaper.

    It is the reference every router must beat: the iso-quality ratio and q@x use it.
    """
    points = single_model_points(quality, cost, models)
    name = min(points, key=lambda m: (-points[m][1], points[m][0], m))
    return name, points[name][0], points[name][1]


def oracle_picks(quality: ArrayLike, cost: ArrayLike) -> np.ndarray:
    """Per prompt the best-quality model index, the cheapest among ties (then lowest index)."""
    q, c = _check_matrices(quality, cost)
    best = q == q.max(axis=1, keepdims=True)
    return np.argmin(np.where(best, c, np.inf), axis=1)


def oracle_point(quality: ArrayLike, cost: ArrayLike) -> Point:
    """(mean cost, mean quality) of the oracle: the ceiling no router can pass on this data."""
    return operating_point(quality, cost, oracle_picks(quality, cost))


def operating_point(quality: ArrayLike, cost: ArrayLike, picks: ArrayLike) -> Point:
    """(mean cost, mean quality) of answering prompt i with model ``picks[i]``."""
    q, c = _check_matrices(quality, cost)
    p = np.asarray(picks)
    if p.shape != (q.shape[0],) or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"picks must be {q.shape[0]} integer indices, got {p.dtype} {p.shape}")
    if p.size and (p.min() < 0 or p.max() >= q.shape[1]):
        raise ValueError("picks out of range")
    rows = np.arange(q.shape[0])
    return float(c[rows, p].mean()), float(q[rows, p].mean())


def _check_points(points: ArrayLike) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"points must be a non-empty (n, 2) array of (cost, quality); "
                         f"got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr[:, 0] < 0).any():
        raise ValueError("points must be finite with non-negative cost")
    return arr


def upper_hull(points: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing concave hull of (cost, quality) points, as (costs, qualities).

    It starts at the cheapest point (the best one among equal cheapest costs), keeps only
    points that raise quality (dominated points are never worth choosing), then drops every
    point under the chord of its neighbours (a randomised mix of those neighbours beats it).
    Collinear middle points are dropped too: they change no metric. Costs and qualities of
    the result are strictly increasing; input order and duplicate costs do not matter.
    """
    arr = _check_points(points)
    arr = arr[np.lexsort((-arr[:, 1], arr[:, 0]))]  # cost ascending, best quality first
    hull: list[tuple[float, float]] = []
    for x, y in arr:
        if hull and y <= hull[-1][1]:
            continue  # not better than a cheaper (or equally cheap) point
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) < 0:
                break  # strict right turn: hull[-1] stays on the concave hull
            hull.pop()
        hull.append((float(x), float(y)))
    h = np.array(hull)
    return h[:, 0], h[:, 1]


def aiq(points: ArrayLike, max_cost: float, extend_left: bool = False) -> float:
    """RouterBench's Average Improvement in Quality: mean hull quality over costs [0, max_cost].

    Convention (RouterBench's reference ``calc_AIQ``, checked against its source): take the
    non-decreasing hull, hold it flat at its last quality out to ``max_cost`` (the most
    expensive single model's mean cost), integrate the area under it from its *cheapest*
    point, and divide by ``max_cost``. Below the hull's cheapest cost the router has no
    operating point, so that stretch contributes 0: read as a budget curve, AIQ is the
    router's best reachable quality averaged over budgets uniform in [0, max_cost], where a
    budget it cannot meet scores 0. Any hull part beyond ``max_cost`` is cut off there.
    ``extend_left=True`` instead holds the hull flat at its first quality down to cost 0
    (crediting quality the router cannot deliver that cheaply; kept for comparison).
    Costs are linear, so the expensive end of the range dominates the value.
    """
    if not max_cost > 0:
        raise ValueError(f"max_cost must be positive, got {max_cost}")
    c, q = upper_hull(points)
    left = q[0] * min(c[0], max_cost) if extend_left else 0.0
    if c[0] >= max_cost:
        return float(left / max_cost)
    inside = c < max_cost
    x = np.append(c[inside], max_cost)
    y = np.append(q[inside], np.interp(max_cost, c, q))  # flat beyond the last hull point
    area = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))
    return (left + area) / max_cost


def iso_quality_cost_ratio(points: ArrayLike, target_quality: float, reference_cost: float,
                           atol: float = 1e-9) -> float:
    """Lowest cost at which the hull reaches ``target_quality``, over ``reference_cost``.

    Between hull vertices cost is interpolated linearly (randomising between two operating
    points mixes their cost and quality linearly). ``inf`` if the hull never reaches the
    target. ``atol`` absorbs float noise, so a router whose sweep ends on the reference model
    itself reaches that model's quality exactly.
    """
    if not reference_cost > 0:
        raise ValueError(f"reference_cost must be positive, got {reference_cost}")
    c, q = upper_hull(points)
    if q[-1] < target_quality - atol:
        return math.inf
    i = int(np.argmax(q >= target_quality - atol))  # first vertex reaching the target
    if i == 0:
        return float(c[0] / reference_cost)
    frac = min(1.0, (target_quality - q[i - 1]) / (q[i] - q[i - 1]))
    return float((c[i - 1] + frac * (c[i] - c[i - 1])) / reference_cost)


def quality_at_cost(points: ArrayLike, budget: float) -> float:
    """Best hull quality at mean cost <= ``budget`` (linear between vertices; flat after).

    ``nan`` when even the cheapest operating point costs more than the budget: the router
    has no answer at that budget, which is different from a poor one.
    """
    c, q = upper_hull(points)
    if budget < c[0]:
        return math.nan
    return float(np.interp(budget, c, q))


def max_quality(points: ArrayLike) -> float:
    """The highest mean quality among the operating points, whatever it costs."""
    return float(_check_points(points)[:, 1].max())


def _pgr_curve(shares: ArrayLike, qualities: ArrayLike, q_weak: float, q_strong: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """(share, PGR) sorted by share, best PGR per share, anchored at (0, 0) and (1, 1)."""
    s, q = np.asarray(shares, dtype=float), np.asarray(qualities, dtype=float)
    if s.shape != q.shape or s.ndim != 1 or s.size == 0:
        raise ValueError("shares and qualities must be equal-length non-empty 1-D")
    if not (np.isfinite(s).all() and np.isfinite(q).all()) or (s < 0).any() or (s > 1).any():
        raise ValueError("shares must be finite in [0, 1] and qualities finite")
    if q_strong == q_weak:
        raise ValueError("PGR is undefined when the weak and strong qualities are equal")
    pgr = (q - q_weak) / (q_strong - q_weak)
    # All-weak and all-strong are reachable by any router; anchor the curve to them.
    s, pgr = np.append(s, [0.0, 1.0]), np.append(pgr, [0.0, 1.0])
    order = np.lexsort((-pgr, s))
    s, pgr = s[order], pgr[order]
    first = np.r_[True, s[1:] != s[:-1]]  # one value per share: the best one
    return s[first], pgr[first]


def apgr(shares: ArrayLike, qualities: ArrayLike, q_weak: float, q_strong: float) -> float:
    """RouteLLM's Average Performance Gap Recovered: area under PGR vs. strong-call share.

    PGR(q) = (q - q_weak) / (q_strong - q_weak); share = fraction of prompts sent to the
    strong model, in [0, 1]. Points are sorted by share and joined linearly (trapezoids) as
    RouteLLM does; the curve is anchored at (0, PGR 0) and (1, PGR 1) where the sweep does
    not supply those shares, so the area always spans [0, 1]. For a sweep covering [0, 1]
    this equals RouteLLM's value. Random routing scores 0.5; higher is better.
    """
    s, pgr = _pgr_curve(shares, qualities, q_weak, q_strong)
    return float(np.sum(np.diff(s) * (pgr[1:] + pgr[:-1]) / 2.0))


def cpt(shares: ArrayLike, qualities: ArrayLike, q_weak: float, q_strong: float,
        level: float) -> float:
    """RouteLLM's Call-Performance Threshold: the strong-call share needed for PGR >= level.

    ``level`` is a fraction (0.5 for CPT(50%)). The share is where the curve of
    :func:`apgr` first crosses ``level``, interpolated linearly between points (RouteLLM
    uses ``np.interp``, which assumes a monotone curve; the first crossing is its intent).
    As the curve is anchored at (1, 1), the result is at most 1 for ``level <= 1``.
    """
    s, pgr = _pgr_curve(shares, qualities, q_weak, q_strong)
    reached = np.flatnonzero(pgr >= level)
    if reached.size == 0:
        return math.inf
    i = int(reached[0])
    if i == 0:
        return float(s[0])
    frac = (level - pgr[i - 1]) / (pgr[i] - pgr[i - 1])
    return float(s[i - 1] + frac * (s[i] - s[i - 1]))


def _finite(x: float) -> float | None:
    """JSON has no inf/nan: None marks "never reached" / "no point that cheap"."""
    return float(x) if math.isfinite(x) else None


def _curve_metrics(points: ArrayLike, best_cost: float, best_quality: float,
                   max_cost: float) -> dict[str, float | None]:
    return {
        "aiq": _finite(aiq(points, max_cost)),
        "iso_quality_cost_ratio": _finite(iso_quality_cost_ratio(points, best_quality,
                                                                 best_cost)),
        "quality_at_0.25x": _finite(quality_at_cost(points, 0.25 * best_cost)),
        "quality_at_0.5x": _finite(quality_at_cost(points, 0.5 * best_cost)),
        "max_quality": _finite(max_quality(points)),
        "n_points": len(np.asarray(points)),
    }


def summarize(quality: ArrayLike, cost: ArrayLike, models: Sequence[str],
              router_points: dict[str, Sequence[Point]],
              strong_shares: dict[str, Sequence[float]] | None = None) -> dict:
    """Every DESIGN metric for each router and the baselines, as a JSON-serialisable dict.

    Keys: ``n_prompts``, ``models``, ``singles`` ({model: {cost, quality}}), ``best_single``
    ({model, cost, quality}), ``oracle`` ({cost, quality}), ``max_single_cost``,
    ``single_frontier`` (the router metrics of randomising between single models, the
    no-routing baseline) and ``routers`` ({name: {aiq, iso_quality_cost_ratio,
    quality_at_0.25x, quality_at_0.5x, max_quality, n_points}}). References are the best
    single's quality and cost; AIQ runs to ``max_single_cost``. With exactly two models and
    a router's ``strong_shares`` (aligned with its points), the router also gets ``apgr``,
    ``cpt50`` and ``cpt80``, with the best single as the strong model. Non-finite values
    become None (iso ratio: never reaches the best single; q@x: no point that cheap).
    """
    q, c = _check_matrices(quality, cost)
    singles = single_model_points(q, c, models)
    best, best_cost, best_quality = best_single(q, c, models)
    oracle_cost, oracle_quality = oracle_point(q, c)
    max_cost = max(p[0] for p in singles.values())
    if not max_cost > 0:
        raise ValueError("the most expensive model has zero mean cost; AIQ is undefined")
    routers: dict[str, dict] = {}
    for name, points in router_points.items():
        row: dict = _curve_metrics(points, best_cost, best_quality, max_cost)
        shares = (strong_shares or {}).get(name)
        if len(models) == 2 and shares is not None:
            if len(shares) != len(points):
                raise ValueError(f"router {name!r}: {len(shares)} shares for "
                                 f"{len(points)} points")
            weak = next(m for m in models if m != best)
            qs, qw = best_quality, singles[weak][1]
            rq = [p[1] for p in points]
            if qs == qw:
                row.update(apgr=None, cpt50=None, cpt80=None)
            else:
                row.update(apgr=_finite(apgr(shares, rq, qw, qs)),
                           cpt50=_finite(cpt(shares, rq, qw, qs, 0.5)),
                           cpt80=_finite(cpt(shares, rq, qw, qs, 0.8)))
        routers[name] = row
    return {
        "n_prompts": int(q.shape[0]),
        "models": list(models),
        "singles": {m: {"cost": p[0], "quality": p[1]} for m, p in singles.items()},
        "best_single": {"model": best, "cost": best_cost, "quality": best_quality},
        "oracle": {"cost": oracle_cost, "quality": oracle_quality},
        "max_single_cost": max_cost,
        "single_frontier": _curve_metrics(list(singles.values()), best_cost, best_quality,
                                          max_cost),
        "routers": routers,
    }
