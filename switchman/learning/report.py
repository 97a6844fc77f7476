"""What ``switchman replay`` writes besides the decisions: summary.json and the plot.

The summary answers the questions a replay is run for (did learning pay, did the budget
hold, where in the stream did quality move) and carries the same figures for the baselines
drawn in the plot: the offline router (``--no-learn``) and the best single model of the
stream. Baselines are scored after the replay, for reporting only; no decision reads them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from switchman.learning.replay import ReplayResult

log = logging.getLogger(__name__)


def quarters(values: np.ndarray) -> list[float]:
    """Means of the four consecutive quarters of ``values`` (a stream's steps)."""
    n = len(values)
    return [float(values[i * n // 4:(i + 1) * n // 4].mean()) if n >= 4 else float("nan")
            for i in range(4)]


def run_summary(result: ReplayResult) -> dict[str, Any]:
    """The figures of one replayed run."""
    spent = np.cumsum(result.cost)
    answered = result.choice >= 0
    names = np.asarray(result.models, dtype=object)
    chosen, counts = np.unique(result.choice[answered], return_counts=True)
    summary: dict[str, Any] = {
        "mean_quality": float(result.quality.mean()),
        "total_cost": float(result.cost.sum()),
        "mean_cost": float(result.cost.mean()),
        "quality_by_quarter": quarters(result.quality),
        "cost_by_quarter": quarters(result.cost),
        "explored_share": float(result.explored.mean()),
        "feedback_steps": int(result.feedback.sum()),
        "refused": int((~answered).sum()),
        "model_share": {str(names[j]): float(c / len(result.choice))
                        for j, c in sorted(zip(chosen, counts, strict=True),
                                           key=lambda jc: -jc[1])},
        "first_cost_weight": float(result.cost_weight[0]) if len(result.cost_weight) else None,
        "last_cost_weight": float(result.cost_weight[-1]) if len(result.cost_weight) else None,
    }
    if result.budget_usd is not None:
        summary["max_spend_over_budget"] = float(spent.max() / result.budget_usd
                                                 if len(spent) else 0.0)
    return summary


def single_summary(model: str, quality: np.ndarray, cost: np.ndarray) -> dict[str, Any]:
    return {"model": model, "mean_quality": float(quality.mean()),
            "total_cost": float(cost.sum()), "quality_by_quarter": quarters(quality)}


def write_plot(path: Path, runs: dict[str, tuple[np.ndarray, np.ndarray]],
               budget_usd: float | None) -> bool:
    """Cumulative mean quality and cumulative spend per step for each run; False (logged)
    when matplotlib (the ``report`` extra) is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'switchman[report]'): "
                    "no plot written")
        return False
    figure = Figure(figsize=(10, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    quality_axes, spend_axes = figure.subplots(1, 2)
    for label, (quality, cost) in runs.items():
        steps = np.arange(1, len(quality) + 1)
        quality_axes.plot(steps, np.cumsum(quality) / steps, label=label)
        spend_axes.plot(steps, np.cumsum(cost), label=label)
    if budget_usd is not None:
        spend_axes.axhline(budget_usd, color="black", linestyle="--", linewidth=1,
                           label="budget")
    quality_axes.set(xlabel="step", ylabel="mean quality so far", title="quality")
    spend_axes.set(xlabel="step", ylabel="spend so far ($)", title="spend")
    for axes in (quality_axes, spend_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    return True
