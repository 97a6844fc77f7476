"""Small training tables: is the default router ever worse than the best single model?

Users' own outcome tables hold hundreds of prompts, not thousands, and on such tables most
routers lose to simply calling the best model (issue 12, item 7). Per dataset and seed, a
fixed 30% of the prompts is held out for testing (``split_by_prompt``, seeded); the
default router is trained on a random subsample of 200 and of 500 of the other prompts
and swept on the test part. Printed per dataset, size and seed:

* the router's AIQ against the single models' hull AIQ (randomising between always-one-model
  routers, the no-routing baseline);
* the router's top quality (its best operating point) against the best single model's
  quality;

both measured on the test part, with whether each is met (router >= singles) and which
combination the stacked estimator chose out of fold. The target is to meet both on every
seed. Prompts are embedded once per dataset; a fit on 500 prompts takes seconds.

    .venv/bin/python benchmarks/small_data.py [--datasets routerbench mmlupro llmrouter]
        [--sizes 200 500] [--seeds 0 1 2 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from switchman.data import OutcomeMatrices, load_outcomes, split_by_prompt, to_matrices
from switchman.encoders import DEFAULT_ENCODER, KNOWN_ENCODERS, encoder_by_name
from switchman.eval import metrics
from switchman.eval.sweep import sweep_picks, sweep_points
from switchman.features import Features, featurize
from switchman.router import new_router

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing"
DATASETS = ("routerbench", "mmlupro", "llmrouter")
N_POINTS = 41
#: Float noise allowed when comparing a router's figure with the singles' (a router whose
#: top point is the best model itself reaches its quality up to rounding).
TOLERANCE = 1e-9


def subset(matrices: OutcomeMatrices, rows: np.ndarray) -> OutcomeMatrices:
    """The prompts ``rows`` of an outcome matrix pair."""
    return dataclasses.replace(
        matrices,
        prompt_ids=matrices.prompt_ids[rows],
        prompts=[matrices.prompts[i] for i in rows],
        tasks=matrices.tasks[rows],
        quality=matrices.quality[rows],
        cost=matrices.cost[rows],
        input_tokens=matrices.input_tokens[rows],
        output_tokens=matrices.output_tokens[rows],
    )


def run(
    train: OutcomeMatrices, test: OutcomeMatrices, train_x: Features, test_x: Features, seed: int
) -> dict:
    """Train the default router on ``train`` and compare its sweep on ``test`` with the
    single models'."""
    router = new_router("default", seed=seed)
    router.fit_features(
        train_x,
        train.models,
        train.quality,
        train.cost,
        train.input_tokens,
        train.output_tokens,
        tasks=train.tasks,
    )
    _, picks = sweep_picks(router.estimate_features(test_x), N_POINTS)
    points = sweep_points(test.quality, test.cost, picks)
    summary = metrics.summarize(test.quality, test.cost, test.models, {"default": points})
    row = summary["routers"]["default"]
    return {
        "aiq": row["aiq"],
        "hull_aiq": summary["single_frontier"]["aiq"],
        "top": row["max_quality"],
        "best": summary["best_single"]["quality"],
        "best_model": summary["best_single"]["model"],
        "selected": getattr(router.estimator, "selected_", "-"),
    }


def run_dataset(name: str, encoder, sizes: list[int], seeds: list[int]) -> list[dict]:  # noqa: ANN001
    table = load_outcomes(DATA / f"{name}.parquet")
    everything = to_matrices(table)
    features = featurize(everything.prompts, encoder, show_progress=True)
    row_of = {pid: i for i, pid in enumerate(everything.prompt_ids)}
    results = []
    for seed in seeds:
        train_df, test_df = split_by_prompt(table, 0.3, seed=seed)
        train, test = to_matrices(train_df), to_matrices(test_df)
        test_x = features.rows(np.array([row_of[p] for p in test.prompt_ids]))
        order = np.random.default_rng(seed).permutation(train.n_prompts)
        for size in sizes:
            if size > train.n_prompts:
                print(
                    f"{name}: only {train.n_prompts} training prompts, skipping {size}",
                    file=sys.stderr,
                )
                continue
            small = subset(train, np.sort(order[:size]))
            train_x = features.rows(np.array([row_of[p] for p in small.prompt_ids]))
            started = time.perf_counter()
            result = run(small, test, train_x, test_x, seed)
            result.update(
                dataset=name,
                size=size,
                seed=seed,
                n_test=test.n_prompts,
                seconds=time.perf_counter() - started,
            )
            print_row(result)
            results.append(result)
    return results


def _met(router: float, singles: float) -> str:
    return "yes" if router >= singles - TOLERANCE else "NO"


HEADER = (
    f"{'dataset':<12} {'n':>4} {'seed':>4} {'AIQ':>7} {'hull':>7} {'diff':>8} {'met':>3}  "
    f"{'top q':>7} {'best q':>7} {'diff':>8} {'met':>3}  {'selected':<14} {'s':>4}"
)


def print_row(r: dict) -> None:
    aiq, hull, top, best = r["aiq"], r["hull_aiq"], r["top"], r["best"]
    print(
        f"{r['dataset']:<12} {r['size']:>4} {r['seed']:>4} {aiq:7.4f} {hull:7.4f} "
        f"{aiq - hull:+8.4f} {_met(aiq, hull):>3}  {top:7.4f} {best:7.4f} {top - best:+8.4f} "
        f"{_met(top, best):>3}  {r['selected']:<14} {r['seconds']:4.0f}",
        flush=True,
    )


def print_totals(results: list[dict]) -> None:
    """Per dataset and size: how many seeds meet each target, and the worst shortfall."""
    print(f"\n## met on seeds (worst margin), {TOLERANCE:g} tolerance")
    print(f"{'dataset':<12} {'n':>4} {'AIQ >= hull':>18} {'top >= best':>18}")
    keys = dict.fromkeys((r["dataset"], r["size"]) for r in results)
    for name, size in keys:
        rows = [r for r in results if (r["dataset"], r["size"]) == (name, size)]
        cells = []
        for ours, theirs in (("aiq", "hull_aiq"), ("top", "best")):
            margins = [r[ours] - r[theirs] for r in rows]
            met = sum(m >= -TOLERANCE for m in margins)
            cells.append(f"{met}/{len(rows)} ({min(margins):+.4f})")
        print(f"{name:<12} {size:>4} {cells[0]:>18} {cells[1]:>18}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        default=[200, 500],
        help="training prompts per subsample (default 200 500)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0, 1, 2, 3],
        help="split and subsample seeds (default 0 1 2 3)",
    )
    parser.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        metavar="NAME",
        help=f"prompt encoder: {', '.join(KNOWN_ENCODERS)} (default {DEFAULT_ENCODER})",
    )
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"routing data not found at {DATA}", file=sys.stderr)
        return 2
    encoder = encoder_by_name(args.encoder)
    print(HEADER)
    results = []
    for name in args.datasets:
        results += run_dataset(name, encoder, args.sizes, args.seeds)
    print_totals(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
