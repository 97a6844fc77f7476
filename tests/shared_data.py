"""Where the tests find ../shared/data, and how they take small, representative slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ROUTING = SHARED / "routing"

requires_routing_data = pytest.mark.skipif(
    not (ROUTING / "routerbench.parquet").is_file(),
    reason=f"shared routing data not found at {ROUTING} (the repo expects ../shared/data)",
)


def sample_prompts(path: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """All rows of ``n`` prompts drawn at random (seeded), so every task is represented."""
    df = pd.read_parquet(path)
    ids = df["prompt_id"].drop_duplicates().to_numpy()
    keep = ids[np.sort(np.random.default_rng(seed).choice(len(ids), n, replace=False))]
    df = df[df["prompt_id"].isin(keep)]
    order = {pid: i for i, pid in enumerate(keep)}
    return df.sort_values("prompt_id", key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True)
