"""Evaluate routers on an outcomes table and report: trained here, or the one you will serve.

Shared by ``switchman eval`` and the benchmarks, so the figures a user sees and the ones
we publish come from the same code. Routers are either trained here on a training table
(the same training ``switchman train`` does) or loaded from a router directory as
``serve`` would load it, profiles included. Every router sees only prompt text at test
time; the test table's quality and cost are used solely to score the decisions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from switchman import __version__, policy
from switchman.data import (
    DataError,
    OutcomeMatrices,
    check_trainable,
    load_outcomes,
    split_by_prompt,
    to_matrices,
)
from switchman.embed import Encoder
from switchman.eval import breakdown, metrics
from switchman.eval.provenance import directory_record, file_record
from switchman.eval.report import format_table, write_report
from switchman.eval.sweep import SweepResult, score_picks, sweep_picks
from switchman.features import Features, featurize
from switchman.pool import load_price_table
from switchman.router import Router, new_router

log = logging.getLogger(__name__)


@dataclass
class RouterScore:
    """A router's sweep on the test table and the point ``serve`` would run it at."""

    sweep: SweepResult
    weights: np.ndarray
    picks: np.ndarray  # (n_points, n_prompts)
    serve_weight: float
    serve_picks: np.ndarray  # (n_prompts,)


def score_router(
    label: str, router: Router, test: OutcomeMatrices, features: Features, n_points: int
) -> RouterScore:
    """Sweep a trained ``router`` over ``test``'s models (a subset of its own) and score it.

    The serve point is the policy at the router's default cost weight, what the gateway
    uses unless the configuration sets ``cost_weight``; it is scored apart from the sweep,
    so the curve's metrics are those of the sweep alone.
    """
    estimates = router.estimate_features(features).select_models(test.models)
    weights, picks = sweep_picks(estimates, n_points, progress=f"sweep {label}")
    serve = policy.choose(estimates, router.default_cost_weight)
    return RouterScore(
        score_picks(test, weights, picks, label), weights, picks, router.default_cost_weight, serve
    )


def sweep_router(
    name: str,
    train: OutcomeMatrices,
    test: OutcomeMatrices,
    train_features: Features,
    test_features: Features,
    n_points: int,
    prices: Mapping[str, tuple[float, float]] | None = None,
    seed: int = 0,
) -> SweepResult:
    """Fit router ``name`` on ``train`` and score its sweep on ``test`` (benchmarks)."""
    if list(train.models) != list(test.models):
        raise ValueError(
            f"train and test tables have different models: {train.models} vs {test.models}"
        )
    router = new_router(name, seed=seed).fit_matrices(train_features, train, prices)
    return score_router(name, router, test, test_features, n_points).sweep


@dataclass
class Evaluated:
    """What is evaluated: routers by label, the test table, and where they came from."""

    routers: dict[str, Router]
    test: pd.DataFrame
    title: str
    run: dict


def train_here(
    train_path: Path,
    test_path: Path | None,
    split: float | None,
    names: Sequence[str],
    seed: int,
    encoder: Encoder,
    prices_path: Path | None,
) -> Evaluated:
    """Routers ``names`` trained on ``train_path`` (or its part outside a ``split``)."""
    prices = load_price_table(prices_path) if prices_path else None
    table = load_outcomes(train_path, prices=prices)
    data = {"train": file_record(train_path)}
    if split is None:
        assert test_path is not None
        train_table, test_table = table, load_outcomes(test_path, prices=prices)
        data["test"] = file_record(test_path)
        title = f"switchman: {train_path.name} -> {test_path.name}"
    else:
        train_table, test_table = split_by_prompt(table, split, seed=seed)
        title = f"switchman: {train_path.name}, {split:.0%} of its prompts held out (seed {seed})"
    check_trainable(train_table, train_path)
    train = to_matrices(train_table)
    # n-grams included: whichever routers are asked for, those with a task classifier read them
    features = featurize(train.prompts, encoder, show_progress=True)
    routers = {
        name: new_router(name, encoder=encoder, seed=seed).fit_matrices(features, train, prices)
        for name in dict.fromkeys(names)
    }
    run = {
        "seed": seed,
        "encoder": encoder.name,
        "split": split,
        "n_train_prompts": train.n_prompts,
        "data": data,
    }
    return Evaluated(routers, test_table, title, run)


def load_router_dir(router_dir: Path, test_path: Path, prices_path: Path | None) -> Evaluated:
    """The router saved at ``router_dir``, as ``serve`` loads it, and the test table."""
    router = Router.load(router_dir)
    prices = load_price_table(prices_path) if prices_path else None
    test_table = load_outcomes(test_path, prices=prices)
    run = {
        "seed": router.estimator.get_params().get("seed"),
        "encoder": router.encoder.name,
        "split": None,
        "router_dir": directory_record(router_dir),
        "data": {"test": file_record(test_path)},
    }
    return Evaluated(
        {router.name: router},
        test_table,
        f"switchman: router {router_dir.name} on {test_path.name}",
        run,
    )


def common_models(router_models: Sequence[str], test: pd.DataFrame, source: Path) -> dict:
    """The models both the routers and the test table have, and those only one side has.

    A test table rarely holds exactly the router's models (a profiled router knows more, a
    new release is missing from it): the routers choose among the shared ones, as the
    gateway does when its pool lacks some of a router's models.
    """
    tested = sorted(str(m) for m in test["model"].unique())
    common = sorted(set(router_models) & set(tested))
    if not common:
        raise DataError(
            f"{source}: none of its models ({', '.join(tested)}) is one the router "
            f"knows ({', '.join(router_models)}); nothing to evaluate"
        )
    out = {
        "models": common,
        "router_only": sorted(set(router_models) - set(tested)),
        "test_only": sorted(set(tested) - set(router_models)),
    }
    for side, says in (
        ("router_only", "not in the test table"),
        ("test_only", "unknown to the router"),
    ):
        if out[side]:
            log.warning(
                "evaluating on the %d models both have; %s: %s",
                len(common),
                says,
                ", ".join(out[side]),
            )
    return out


def evaluate(evaluated: Evaluated, test_source: Path, out_dir: Path, n_points: int = 41) -> str:
    """Score every router on the test table; write summary.json, decisions.parquet and the
    report into ``out_dir``; return the terminal table."""
    first = next(iter(evaluated.routers.values()))
    models = common_models(first.models, evaluated.test, test_source)
    test = to_matrices(evaluated.test[evaluated.test["model"].isin(models["models"])])
    scores = {
        label: score_router(
            label, router, test, router.features(test.prompts, show_progress=True), n_points
        )
        for label, router in evaluated.routers.items()
    }
    summary = metrics.summarize(
        test.quality,
        test.cost,
        test.models,
        {n: s.sweep.points for n, s in scores.items()},
        {n: s.sweep.strong_shares for n, s in scores.items()},
    )
    summary.update(_breakdowns(test, scores))
    summary["models_evaluated"] = models
    summary["run"] = {**evaluated.run, "switchman_version": __version__, "n_points": n_points}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    pd.concat([s.sweep.decisions for s in scores.values()], ignore_index=True).to_parquet(
        out_dir / "decisions.parquet", index=False
    )
    write_report(
        summary,
        {n: s.sweep.points for n, s in scores.items()},
        metrics.single_model_points(test.quality, test.cost, test.models),
        metrics.oracle_point(test.quality, test.cost),
        out_dir,
        title=evaluated.title,
    )
    log.info("wrote summary.json, decisions.parquet and the report to %s", out_dir)
    return format_table(summary)


def _breakdowns(test: OutcomeMatrices, scores: Mapping[str, RouterScore]) -> dict:
    """The serve point, the models each point chooses, and the per-task figures."""
    best, best_cost, best_quality = metrics.best_single(test.quality, test.cost, test.models)
    serve, points = {}, {}
    choices: dict[str, np.ndarray] = {}
    for label, score in scores.items():
        cost, quality = metrics.operating_point(test.quality, test.cost, score.serve_picks)
        serve[label] = {
            "cost_weight": score.serve_weight,
            "cost": cost,
            "quality": quality,
            "cost_ratio_to_best_single": cost / best_cost if best_cost > 0 else None,
            "quality_minus_best_single": quality - best_quality,
            "shares": breakdown.model_shares(score.serve_picks, test.models),
        }
        points[label] = breakdown.operating_points(
            test.quality, test.cost, score.weights, score.picks, test.models
        )
        choices[f"{label} (serve)"] = score.serve_picks
    choices[f"best single: {best}"] = np.full(test.n_prompts, test.models.index(best))
    choices["oracle"] = metrics.oracle_picks(test.quality, test.cost)
    return {
        "serve": serve,
        "operating_points": points,
        "by_task": breakdown.by_task(test.quality, test.cost, test.tasks, choices),
    }
