"""Where a router's figures come from: which models it chose, and how it did per task.

An AIQ says how good a curve is; a user deciding whether to serve a router also needs to
see which models each operating point actually calls (a point that sends every prompt to
one model is that model, not routing) and whether the average hides a task on which the
router falls short of the best single model. Pure functions of outcome matrices and picks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from switchman.eval import metrics


def model_shares(picks: np.ndarray, models: Sequence[str]) -> dict[str, float]:
    """Share of prompts sent to each model by one operating point's picks (n,)."""
    counts = np.bincount(np.asarray(picks, dtype=np.int64), minlength=len(models))
    total = max(int(counts.sum()), 1)
    return {str(m): float(counts[j] / total) for j, m in enumerate(models)}


def operating_points(
    quality: np.ndarray,
    cost: np.ndarray,
    weights: np.ndarray,
    picks: np.ndarray,
    models: Sequence[str],
) -> list[dict]:
    """Per sweep point (n_points, n_prompts picks): its cost weight, observed mean cost
    and quality, and the share of prompts each model got."""
    rows = []
    for point, (weight, chosen) in enumerate(zip(weights, picks, strict=True)):
        mean_cost, mean_quality = metrics.operating_point(quality, cost, chosen)
        rows.append(
            {
                "point": point,
                "cost_weight": float(weight),
                "cost": mean_cost,
                "quality": mean_quality,
                "shares": model_shares(chosen, models),
            }
        )
    return rows


def by_task(
    quality: np.ndarray, cost: np.ndarray, tasks: np.ndarray, choices: Mapping[str, np.ndarray]
) -> list[dict]:
    """Per task: its prompt count and, for each named way of choosing (picks (n,)), the
    mean quality and cost of its choices on that task's prompts. Empty with fewer than two
    tasks: the overall figures already say it all."""
    tasks = np.asarray(tasks, dtype=str)
    names = list(dict.fromkeys(tasks.tolist()))
    if len(names) < 2:
        return []
    rows = []
    for task in sorted(names):
        index = np.flatnonzero(tasks == task)
        row: dict = {"task": task, "n_prompts": int(len(index))}
        for label, picks in choices.items():
            mean_cost, mean_quality = metrics.operating_point(
                quality[index], cost[index], np.asarray(picks)[index]
            )
            row[label] = {"quality": mean_quality, "cost": mean_cost}
        rows.append(row)
    return rows
