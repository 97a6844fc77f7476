"""Routing quality on the four dev datasets: every estimator against a task-label router.

Each dataset is split 70/30 by prompt (seeded; no prompt text on both sides). Routers are
trained on the 70% and swept on the 30%; the task-label router is told each test prompt's
``task`` and picks, for each cost weight, the model with the best train-set utility for
that task. Prints AIQ, iso-quality cost ratio, max quality and quality at 0.25x / 0.5x of
the best single model's cost (and APGR / CPT for the two-model pool).

    .venv/bin/python benchmarks/routing_quality.py [--datasets routerbench mmlupro ...]
        [--routers default task ...] [--seeds 0 1 2] [--encoder NAME]

One split (seed 0) is one draw: differences of a few thousandths of AIQ between routers are
within split noise. With several --seeds, the script ends with each router's margin over
the task-label router per seed and on average (what held-out acceptance sets will show).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from switchman.data import OutcomeMatrices, load_outcomes, split_by_prompt, to_matrices
from switchman.encoders import DEFAULT_ENCODER, KNOWN_ENCODERS, encoder_by_name
from switchman.estimates import Estimates
from switchman.estimators import ROUTER_NAMES
from switchman.eval import metrics
from switchman.eval.sweep import SweepResult, score_picks, sweep_picks
from switchman.evaluation import sweep_router
from switchman.features import featurize

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing"
DATASETS = ("routerbench", "mmlupro", "llmrouter", "routellm")
N_POINTS = 41


def task_label_estimates(train: OutcomeMatrices, test: OutcomeMatrices) -> Estimates:
    """Each test prompt gets its task's train-set mean quality and cost per model."""
    overall_q, overall_c = train.quality.mean(axis=0), train.cost.mean(axis=0)
    by_task = {}
    for task in np.unique(train.tasks):
        rows = train.tasks == task
        by_task[task] = (train.quality[rows].mean(axis=0), train.cost[rows].mean(axis=0))
    quality = np.stack([by_task.get(t, (overall_q, overall_c))[0] for t in test.tasks])
    cost = np.stack([by_task.get(t, (overall_q, overall_c))[1] for t in test.tasks])
    return Estimates(tuple(train.models), quality, cost)


def run_dataset(name: str, encoder, routers: list[str], seed: int = 0) -> dict:  # noqa: ANN001
    started = time.perf_counter()
    train_df, test_df = split_by_prompt(load_outcomes(DATA / f"{name}.parquet"), 0.3, seed=seed)
    train, test = to_matrices(train_df), to_matrices(test_df)
    train_x = featurize(train.prompts, encoder, show_progress=True)  # n-grams for every router
    test_x = featurize(test.prompts, encoder, show_progress=True)
    results: dict[str, SweepResult] = {}
    for router in routers:
        results[router] = sweep_router(router, train, test, train_x, test_x, N_POINTS)
    weights, picks = sweep_picks(task_label_estimates(train, test), N_POINTS)
    results["task-label"] = score_picks(test, weights, picks, "task-label")
    summary = metrics.summarize(test.quality, test.cost, test.models,
                                {n: r.points for n, r in results.items()},
                                {n: r.strong_shares for n, r in results.items()})
    summary["seconds"] = time.perf_counter() - started
    summary["n_train"] = train.n_prompts
    summary["seed"] = seed
    return summary


def _fmt(value: float | None, spec: str) -> str:
    return "never" if value is None else format(value, spec)


def print_summary(name: str, summary: dict) -> None:
    best = summary["best_single"]
    oracle = summary["oracle"]
    print(f"\n## {name} (split seed {summary['seed']}): {summary['n_train']} train / "
          f"{summary['n_prompts']} test prompts, {len(summary['models'])} models "
          f"({summary['seconds']:.0f} s)")
    print(f"best single {best['model']}: quality {best['quality']:.4f} at ${best['cost']:.3g}; "
          f"oracle {oracle['quality']:.4f} at ${oracle['cost']:.3g}")
    two = len(summary["models"]) == 2
    header = f"{'router':<12} {'AIQ':>7} {'iso-cost':>9} {'max q':>7} {'q@0.25x':>8} {'q@0.5x':>8}"
    print(header + ("  APGR  CPT50  CPT80" if two else ""))
    rows = dict(summary["routers"])
    rows["(singles)"] = summary["single_frontier"]
    for router, row in rows.items():
        line = (f"{router:<12} {_fmt(row['aiq'], '.4f'):>7} "
                f"{_fmt(row['iso_quality_cost_ratio'], '.3f'):>9} "
                f"{_fmt(row['max_quality'], '.4f'):>7} {_fmt(row['quality_at_0.25x'], '.4f'):>8} "
                f"{_fmt(row['quality_at_0.5x'], '.4f'):>8}")
        if two and "apgr" in row:
            line += (f" {_fmt(row['apgr'], '.3f'):>5} {_fmt(row['cpt50'], '.3f'):>6} "
                     f"{_fmt(row['cpt80'], '.3f'):>6}")
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--routers", nargs="+", default=list(ROUTER_NAMES), choices=ROUTER_NAMES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="70/30 split seeds (default 0)")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, metavar="NAME",
                        help=f"prompt encoder: {', '.join(KNOWN_ENCODERS)} "
                             f"(default {DEFAULT_ENCODER})")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"routing data not found at {DATA}", file=sys.stderr)
        return 2
    encoder = encoder_by_name(args.encoder)
    margins: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    for name in args.datasets:
        for seed in args.seeds:
            summary = run_dataset(name, encoder, args.routers, seed)
            print_summary(name, summary)
            label = summary["routers"]["task-label"]
            for router in args.routers:
                row = summary["routers"][router]
                iso = (None if row["iso_quality_cost_ratio"] is None
                       or label["iso_quality_cost_ratio"] is None
                       else row["iso_quality_cost_ratio"] - label["iso_quality_cost_ratio"])
                margins.setdefault((name, router), []).append((row["aiq"] - label["aiq"], iso))
    if len(args.seeds) > 1:
        print_margins(margins, args.seeds)
    return 0


def print_margins(margins: dict[tuple[str, str], list[tuple[float, float | None]]],
                  seeds: list[int]) -> None:
    """Per dataset and router: AIQ and iso-cost ratio minus the task-label router's."""
    print(f"\n## margin over task-label, seeds {' '.join(map(str, seeds))} "
          "(AIQ: higher is better; iso-cost ratio: lower is better, 'never' if either never "
          "reaches the best single)")
    print(f"{'dataset':<12} {'router':<10} {'AIQ per seed':<40} {'mean':>8}  iso-cost per seed")
    for (name, router), rows in margins.items():
        aiq = [r[0] for r in rows]
        iso = " ".join(_fmt(r[1], "+.3f") for r in rows)
        print(f"{name:<12} {router:<10} {' '.join(f'{a:+.4f}' for a in aiq):<40} "
              f"{np.mean(aiq):>+8.4f}  {iso}")


if __name__ == "__main__":
    raise SystemExit(main())
