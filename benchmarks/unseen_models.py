"""Models the router never saw, added by profile: how much of a retrain's gain they recover.

Per dataset and seed: a seeded 70/30 split by prompt; k models held out at random (8 of
mmlupro's 28, 3 of llmrouter's 9 and of routerbench's 11); the default router trained on
the other models ("old") and, for reference, on all of them ("retrained"). The held-out
models are then added to the old router with ``Router.add_profiles`` (what ``switchman
profile add`` runs) from their outcomes on n training prompts, picked by ``select_prompts``
(``profile select``) or at random, and the test part is routed among all models.

Printed per dataset and n: AIQ and iso-quality cost ratio averaged over seeds, and

    gain recovered = mean(AIQ profiled - AIQ old) / mean(AIQ retrained - AIQ old)

(the ratio of the gains averaged over seeds; it is undefined where a retrain gains nothing).
The row "all training answers" profiles the held-out models from all their answers on the
training part (a reference, not a use case): what placing a model by profile reaches when n
is no limit. The two rows after it split what the selected n = 50 placement loses against
that reference: "level known" keeps each profile's shape as placed from the n answers but
sets its level (its mean estimate over training prompts) to the reference's; "shape known"
keeps the reference's shape and re-reads the level from the n answers alone (the mean
residual there). Where "shape known" falls short, the n answers do not pin a model's level
well enough even with everything else given.
Also: seconds to add one model from 100 prompts, and one-prompt routing latency of the
profiled router against the same router without its profiles and the retrained one with
as many models (whose fit may blend other estimator families: mmlupro's old router blends
three neighbour searches, its retrained one the task mixture alone).

    .venv/bin/python benchmarks/unseen_models.py [--datasets mmlupro llmrouter routerbench]
        [--seeds 0 1 2 3] [--cache /tmp/unseen-routers]

Trained routers are cached under ``--cache`` (a default fit of mmlupro takes minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from switchman.data import OutcomeMatrices, load_outcomes, split_by_prompt, to_matrices
from switchman.eval import metrics
from switchman.eval.sweep import sweep_picks, sweep_points
from switchman.router import Router, new_router

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing"
HELD_OUT = {"mmlupro": 8, "llmrouter": 3, "routerbench": 3}
SIZES = (10, 25, 50, 100)
#: The n at which a placement's loss is split into level and shape (the issue's target row),
#: and the training prompts a model's level (its mean estimate) is read on.
DECOMPOSED_AT = 50
LEVEL_SAMPLE = 2000
N_POINTS = 41


def trained(cache: Path, key: str, table: pd.DataFrame) -> Path:
    """The directory of a default router trained on ``table``, trained once per key."""
    directory = cache / key
    if not (directory / "router.json").is_file():
        started = time.perf_counter()
        new_router("default").fit(table).save(directory)
        print(f"  trained {key} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return directory


def scores(router: Router, test: OutcomeMatrices, test_prompts: list[str]) -> tuple[float, float]:
    """(AIQ, iso-quality cost ratio) of routing the test prompts among the router's models."""
    estimates = router.estimate(test_prompts)
    _, picks = sweep_picks(estimates, N_POINTS)
    columns = np.array([test.models.index(m) for m in estimates.models])
    points = sweep_points(test.quality, test.cost, columns[picks])
    best = int(np.argmax(test.quality.mean(axis=0)))
    aiq = metrics.aiq(points, float(test.cost.mean(axis=0).max()))
    iso = metrics.iso_quality_cost_ratio(points, float(test.quality[:, best].mean()),
                                         float(test.cost[:, best].mean()))
    return aiq, iso


def run_seed(name: str, seed: int, cache: Path) -> dict:
    table = load_outcomes(DATA / f"{name}.parquet")
    train_df, test_df = split_by_prompt(table, 0.3, seed=seed)
    models = sorted(table["model"].unique())
    rng = np.random.default_rng(seed)
    held = sorted(rng.choice(models, HELD_OUT[name], replace=False).tolist())
    old_dir = trained(cache, f"{name}-{seed}-old", train_df[~train_df["model"].isin(held)])
    all_dir = trained(cache, f"{name}-{seed}-all", train_df)
    test = to_matrices(test_df)
    prompts = test.prompts
    row = {"held": held, "old": scores(Router.load(old_dir), test, prompts),
           "retrained": scores(Router.load(all_dir), test, prompts)}
    new_rows = train_df[train_df["model"].isin(held)]
    train_ids = np.array(sorted(train_df["prompt_id"].unique()))
    for n in SIZES:
        picked = {"selected": Router.load(old_dir).select_prompts(n)["prompt_id"].tolist(),
                  "random": rng.choice(train_ids, n, replace=False).tolist()}
        for how, ids in picked.items():
            router = Router.load(old_dir)
            answers = new_rows[new_rows["prompt_id"].isin(set(ids))]
            router.add_profiles(answers, source=how)
            row[(how, n)] = scores(router, test, prompts)
            if (how, n) == ("selected", DECOMPOSED_AT):
                few, few_answers = router, answers  # split into level and shape below
            if (how, n) == ("selected", SIZES[-1]):
                row["latency"] = latency(router, Router.load(old_dir), Router.load(all_dir),
                                         prompts[:200])
    everything = Router.load(old_dir)  # reference: the placement's own limit, whatever n
    everything.add_profiles(new_rows, source="all")
    row["all answers"] = scores(everything, test, prompts)
    sample = train_df.drop_duplicates("prompt_id").sample(
        min(LEVEL_SAMPLE, train_ids.size), random_state=seed)["prompt"].tolist()
    row["level known"] = scores(with_levels(few, mean_estimates(everything, sample, held),
                                            sample), test, prompts)
    row["shape known"] = scores(level_from(everything, few_answers), test, prompts)
    router = Router.load(old_dir)
    one = new_rows[new_rows["model"] == held[0]]
    one = one[one["prompt_id"].isin(set(router.select_prompts(100)["prompt_id"]))]
    started = time.perf_counter()
    router.add_profiles(one, source="timing")
    row["add_seconds"] = time.perf_counter() - started
    return row


def mean_estimates(router: Router, prompts: list[str], models: list[str]) -> dict[str, float]:
    """Each model's estimated quality averaged over ``prompts``."""
    estimates = router.estimate(prompts)
    return {m: float(estimates.quality[:, estimates.models.index(m)].mean()) for m in models}


def shifted(router: Router, shifts: dict[str, float]) -> Router:
    """``router`` with each named added model's level moved by its shift (through the
    profile-file round trip a served profile takes; nothing else changes)."""
    for name, shift in shifts.items():
        file = router.profile_file(name)
        arrays = {**file.arrays, "profile.offsets": file.arrays["profile.offsets"] + shift}
        router.add_profile_file(dataclasses.replace(file, arrays=arrays))
    return router


def with_levels(router: Router, levels: dict[str, float], prompts: list[str]) -> Router:
    """``router``'s added models as placed, each shifted so that its mean estimate over
    ``prompts`` is its entry of ``levels``: the placement's shape with the level right."""
    now = mean_estimates(router, prompts, list(levels))
    return shifted(router, {m: levels[m] - now[m] for m in levels})


def level_from(router: Router, answers: pd.DataFrame) -> Router:
    """``router``'s added models (placed from all their answers: their true shape) with
    each level re-read from ``answers`` alone, as their mean residual there: the best a
    level known from those answers does with the shape given."""
    prompts = answers.drop_duplicates("prompt_id")
    estimates = router.estimate(prompts["prompt"].tolist())
    row_of = {pid: i for i, pid in enumerate(prompts["prompt_id"])}
    shifts = {}
    for name, rows in answers.groupby("model"):
        predicted = estimates.quality[rows["prompt_id"].map(row_of).to_numpy(),
                                      estimates.models.index(name)]
        shifts[str(name)] = float((rows["quality"].to_numpy() - predicted).mean())
    return shifted(router, shifts)


def latency(profiled: Router, bare: Router, retrained: Router,
            prompts: list[str]) -> tuple[float, float, float]:
    """Median one-prompt routing time (ms) of the old router with every held-out model
    added by profile, of the same router without them (what profiles add), and of the
    router retrained on all models (which training may give another, cheaper or dearer,
    blend of estimator families). Three alternating rounds, so load hits all alike."""
    times: list[list[float]] = [[], [], []]
    for router in (profiled, bare, retrained):
        router.estimate(prompts[:5])  # warm caches
    for _ in range(3):
        for k, router in enumerate((profiled, bare, retrained)):
            for prompt in prompts:
                started = time.perf_counter()
                router.estimate([prompt])
                times[k].append(time.perf_counter() - started)
    profiled_ms, bare_ms, retrained_ms = (1000 * statistics.median(t) for t in times)
    return profiled_ms, bare_ms, retrained_ms


def report(name: str, rows: list[dict]) -> None:
    seeds = len(rows)
    print(f"\n## {name}: {seeds} seed(s), held out per seed: "
          + "; ".join(", ".join(r["held"]) for r in rows))
    old = np.mean([r["old"][0] for r in rows])
    full = np.mean([r["retrained"][0] for r in rows])
    print(f"{'router':<22} {'AIQ':>7} {'iso-cost':>9} {'gain recovered':>15}")

    def line(label: str, key: object) -> None:
        aiq = np.mean([r[key][0] for r in rows])
        iso = [r[key][1] for r in rows]
        iso_text = "never" if any(np.isinf(iso)) else f"{np.mean(iso):.3f}"
        gain = (aiq - old) / (full - old) if full - old > 1e-9 else float("nan")
        print(f"{label:<22} {aiq:7.4f} {iso_text:>9} {gain:15.3f}")

    line("old models only", "old")
    line("retrained on all", "retrained")
    for n in SIZES:
        for how in ("selected", "random"):
            line(f"{how} n={n}", (how, n))
    line("all training answers", "all answers")
    line(f"level known, n={DECOMPOSED_AT}", "level known")
    line(f"shape known, n={DECOMPOSED_AT}", "shape known")
    print(f"profile add, one model from 100 prompts: "
          f"{np.median([r['add_seconds'] for r in rows]):.3f} s (median over seeds)")
    profiled, bare, retrained = (np.median([r["latency"][i] for r in rows]) for i in range(3))
    print(f"one-prompt routing: {profiled:.3f} ms with the held-out models profiled, "
          f"{bare:.3f} ms the same router without them ({profiled / bare - 1:+.1%}), "
          f"{retrained:.3f} ms retrained on them ({profiled / retrained - 1:+.1%})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(HELD_OUT), choices=HELD_OUT)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/unseen-routers"))
    args = parser.parse_args(argv)
    for name in args.datasets:
        rows = [run_seed(name, seed, args.cache) for seed in args.seeds]
        report(name, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
