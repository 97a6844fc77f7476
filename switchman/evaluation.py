"""Train routers on one outcomes table, sweep them on another, and report.

Shared by ``switchman eval`` and the benchmarks, so the figures a user sees and the ones
we publish come from the same code. Every router sees only prompt text at test time; the
test table's quality and cost are used solely to score the decisions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from switchman.data import OutcomeMatrices, check_trainable, load_outcomes, to_matrices
from switchman.embed import Encoder
from switchman.encoders import default_encoder
from switchman.eval import metrics
from switchman.eval.report import format_table, write_report
from switchman.eval.sweep import SweepResult, score_picks, sweep_picks
from switchman.features import Features, featurize
from switchman.pool import load_price_table
from switchman.router import new_router

log = logging.getLogger(__name__)


def sweep_router(name: str, train: OutcomeMatrices, test: OutcomeMatrices,
                 train_features: Features, test_features: Features, n_points: int,
                 prices: Mapping[str, tuple[float, float]] | None = None,
                 seed: int = 0) -> SweepResult:
    """Fit router ``name`` on ``train`` and score its sweep on ``test``."""
    if list(train.models) != list(test.models):
        raise ValueError(f"train and test tables have different models: {train.models} vs "
                         f"{test.models}")
    router = new_router(name, seed=seed)
    router.fit_features(train_features, train.models, train.quality, train.cost,
                        train.input_tokens, train.output_tokens, prices, tasks=train.tasks)
    weights, picks = sweep_picks(router.estimate_features(test_features), n_points)
    return score_picks(test, weights, picks, name)


def run_evaluation(train_path: Path, test_path: Path, routers: Sequence[str], out_dir: Path,
                   n_points: int = 41, prices_path: Path | None = None, seed: int = 0,
                   encoder: Encoder | None = None) -> str:
    """``switchman eval``: writes summary.json, decisions.parquet and the report."""
    prices = load_price_table(prices_path) if prices_path else None
    train_table = load_outcomes(train_path, prices=prices)
    check_trainable(train_table, train_path)
    train = to_matrices(train_table)
    test = to_matrices(load_outcomes(test_path, prices=prices))
    encoder = encoder or default_encoder()
    # n-grams included: whichever routers are asked for, those with a task classifier read them
    train_features = featurize(train.prompts, encoder, show_progress=True)
    test_features = featurize(test.prompts, encoder, show_progress=True)
    results = {name: sweep_router(name, train, test, train_features, test_features, n_points,
                                  prices, seed)
               for name in dict.fromkeys(routers)}
    summary = metrics.summarize(test.quality, test.cost, test.models,
                                {n: r.points for n, r in results.items()},
                                {n: r.strong_shares for n, r in results.items()})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    pd.concat([r.decisions for r in results.values()], ignore_index=True).to_parquet(
        out_dir / "decisions.parquet", index=False)
    singles = metrics.single_model_points(test.quality, test.cost, test.models)
    write_report(summary, {n: r.points for n, r in results.items()}, singles,
                 metrics.oracle_point(test.quality, test.cost), out_dir,
                 title=f"switchman: {train_path.name} -> {test_path.name}")
    log.info("wrote summary.json, decisions.parquet and the report to %s", out_dir)
    return format_table(summary)
