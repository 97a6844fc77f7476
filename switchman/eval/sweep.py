"""Decisions across the cost-weight sweep: the rows ``switchman route`` writes.

One row per (operating point, prompt), point 0 being the cheapest operating point and the
last the best expected quality, as DESIGN's command-line contract specifies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from switchman import policy
from switchman.estimates import Estimates


def sweep_picks(estimates: Estimates, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(cost weights from cheapest to best quality, picks (n_points, n_prompts))."""
    weights = policy.cost_weight_sweep(estimates, n_points)
    picks = np.stack([policy.choose(estimates, float(w)) for w in weights])
    return weights, picks


def sweep_decisions(estimates: Estimates, prompt_ids: Sequence[str], n_points: int) -> pd.DataFrame:
    """The DECISIONS table for a batch of prompts."""
    weights, picks = sweep_picks(estimates, n_points)
    n_prompts = len(prompt_ids)
    models = np.asarray(estimates.models, dtype=object)
    return pd.DataFrame({
        "point": np.repeat(np.arange(len(weights)), n_prompts),
        "cost_weight": np.repeat(weights, n_prompts),
        "prompt_id": np.tile(np.asarray(prompt_ids, dtype=object), len(weights)),
        "model": models[picks.ravel()],
    })
