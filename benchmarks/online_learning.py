"""Online learning and budget pacing on dev data: the figures of issue 15.

Per dataset and seed: a seeded 70/30 split by prompt (``split_by_prompt``), the router trained
on the 70%, the 30% shuffled (same seed) as the stream, replayed step by step with the same
code as ``switchman replay`` (``switchman.learning.replay``). Printed, for mmlupro and
routerbench:

* drift: half-way through the stream one model changes (the best one breaks, a weak cheap one
  starts answering as the best does, a price changes, the most used one loses a fifth of its
  right answers: too small a change per answer to look like a break); mean quality (and
  cost) per quarter for learn, no-learn and a router told in advance (the offline
  estimates changed as the outcomes were, from the drift on);
* no drift: learn against no-learn, quality and cost;
* cold start: the router trained on 5% of the training part, with and without learning,
  against the router trained on all of it (all at the full router's cost weight); with
  ``--cold-bound``, also the cold router retrained with as much full-information data as
  the stream's bandit feedback holds (what that much information closes, used fully);
  ``--orders N`` pools both over N seeded orders of each stream (a last-quarter gap is a
  few dozen answers: which prompts fall there decides much of one order's figure);
* budget: 25% and 50% of the best single model's spend on the stream: the largest spend /
  budget ratio over the steps and the mean quality against the best single model's, next
  to the router at the one fixed cost weight that spends the budget in hindsight (about
  the best any pacing of the router's estimates can do);
* sparse feedback: the drifts with feedback on 10% of the steps;
* speed: the learner's decision and update p50, and the router's own single-prompt estimate.

    .venv/bin/python benchmarks/online_learning.py [--datasets mmlupro routerbench]
        [--seeds 0 1 2 3] [--router default] [--cache /tmp/switchman-online] [--tune]
        [--cold-bound] [--orders 1] [--learner KEY=VALUE ...]

``--tune`` replaces each split by an inner one of its training part (the router trained on
70% of the 70%, the stream drawn from the other 30% of it): the learner's defaults were chosen
on those streams only, never on the test streams the figures come from.
Trained routers and stream estimates are cached under ``--cache`` (default router: ~30 s for
routerbench, ~150 s for mmlupro per split on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from switchman.data import load_outcomes, split_by_prompt, to_matrices
from switchman.estimates import Estimates
from switchman.learning.config import LearnerConfig
from switchman.learning.learner import OnlineLearner
from switchman.learning.replay import ReplayResult, ReplaySettings, StreamOutcomes, replay
from switchman.router import Router, new_router

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing"
COLD_FRACTION = 0.05
#: Last-quarter quality gaps below this (a few answers of a quarter) are not divided by.
NOISE_GAP = 0.005


@dataclass
class Split:
    """One seeded split: the stream (shuffled test part) and what the routers said about it."""

    name: str
    seed: int
    models: tuple[str, ...]
    train_quality: np.ndarray  # training part's mean quality per model
    train_cost: np.ndarray
    quality: np.ndarray  # (steps, models) the stream's outcomes
    cost: np.ndarray
    embeddings: np.ndarray
    full: Estimates  # the router trained on the whole training part
    cold: Estimates  # the router trained on COLD_FRACTION of it
    cost_weight: float  # the full router's default cost weight
    router: Router
    train: pd.DataFrame  # the training part (outcomes table)
    cold_ids: np.ndarray  # prompt ids of the cold router's share of it
    prompts: list[str]  # the stream's prompts, in stream order
    key: str  # cache key of the split
    seen: dict[str, int]  # per model, the prompts the full router learned it from
    cold_seen: dict[str, int]  # and the cold router


def _train_cached(path: Path, family: str, table, seed: int) -> Router:  # noqa: ANN001
    if (path / "router.json").is_file():
        return Router.load(path)
    router = new_router(family, seed=seed).fit(table)
    router.save(path)
    return router


def load_split(name: str, seed: int, family: str, cache: Path, tune: bool) -> Split:
    """The split's stream and both routers' estimates for it (trained and cached once)."""
    train, test = split_by_prompt(load_outcomes(DATA / f"{name}.parquet"), 0.3, seed=seed)
    if tune:  # an inner split of the training part: the test part is never looked at
        train, test = split_by_prompt(train, 0.3, seed=seed + 1000)
    key = f"{name}-s{seed}-{family}{'-tune' if tune else ''}"
    full = _train_cached(cache / f"{key}-full", family, train, seed)
    ids = train["prompt_id"].drop_duplicates().to_numpy()
    rng = np.random.default_rng(seed)
    keep = ids[rng.choice(len(ids), max(round(COLD_FRACTION * len(ids)), 20), replace=False)]
    cold = _train_cached(cache / f"{key}-cold", family, train[train["prompt_id"].isin(keep)],
                         seed)
    stream = to_matrices(test)
    order = np.random.default_rng(seed).permutation(stream.n_prompts)
    prompts = [stream.prompts[i] for i in order]
    estimates_file = cache / f"{key}-stream.npz"
    if estimates_file.is_file():
        saved = np.load(estimates_file)
        embeddings = saved["embeddings"]
        full_est = Estimates(full.models, saved["full_q"], saved["full_c"])
        cold_est = Estimates(cold.models, saved["cold_q"], saved["cold_c"])
    else:
        features = full.features(prompts)
        embeddings = features.embeddings
        full_est = full.estimate_features(features)
        cold_est = cold.estimate(prompts)
        np.savez(estimates_file, embeddings=embeddings, full_q=full_est.quality,
                 full_c=full_est.cost, cold_q=cold_est.quality, cold_c=cold_est.cost)
    matrices = to_matrices(train)
    return Split(name, seed, tuple(stream.models), matrices.quality.mean(axis=0),
                 matrices.cost.mean(axis=0), stream.quality[order], stream.cost[order],
                 embeddings, full_est, cold_est, full.default_cost_weight, full, train, keep,
                 prompts, key, full.prompts_seen(), cold.prompts_seen())


@dataclass(frozen=True)
class Drift:
    """From ``start`` on, ``model`` changes: its quality becomes ``copy_of``'s (or 0 when
    ``breaks``, or keeps a seeded share ``keeps`` of its right answers), or its cost is
    multiplied by ``price``."""

    kind: str
    name: str
    model: int
    start: int
    breaks: bool = False
    copy_of: int | None = None
    price: float = 1.0
    keeps: float = 1.0

    def outcomes(self, quality: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stream's outcomes after the drift (a degrading model loses a seeded share
        of its right answers)."""
        kept = np.random.default_rng(self.model).random(len(quality)) < self.keeps
        return self._apply(quality, cost, kept[self.start:])

    def told(self, estimates: Estimates) -> Estimates:
        """The offline estimates changed as the outcomes are: a router told in advance (of
        a degrading model, the share it keeps)."""
        quality, cost = self._apply(estimates.quality, estimates.cost, self.keeps)
        return Estimates(estimates.models, quality, cost)

    def _apply(self, quality: np.ndarray, cost: np.ndarray,
               kept: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        quality, cost = quality.copy(), cost.copy()
        if self.breaks:
            quality[self.start:, self.model] = 0.0
        if self.copy_of is not None:
            quality[self.start:, self.model] = quality[self.start:, self.copy_of]
        quality[self.start:, self.model] *= kept
        cost[self.start:, self.model] *= self.price
        return quality, cost


def drifts(split: Split) -> list[Drift]:
    """The drifts built for a split, from what the training part and the pre-drift half show."""
    n = len(split.quality)
    start = n // 2
    best = int(np.argmax(split.train_quality))
    cheap = np.flatnonzero(split.train_cost <= np.median(split.train_cost))
    weak = int(cheap[np.argmin(split.train_quality[cheap])])
    before = run(split, split.full, split.quality, split.cost, learn=False)
    used = int(np.bincount(before.choice[:start], minlength=len(split.models)).argmax())
    return [
        Drift("best breaks", f"{split.models[best]} breaks", best, start, breaks=True),
        Drift("weak improves", f"{split.models[weak]} answers as {split.models[best]}", weak,
              start, copy_of=best),
        Drift("price rise", f"{split.models[used]} (most used) costs 10x", used, start,
              price=10.0),
        Drift("best cheaper", f"{split.models[best]} (best) costs 1/10", best, start,
              price=0.1),
        Drift("used degrades", f"{split.models[used]} (most used) loses a fifth of its right "
              "answers", used, start, keeps=0.8),
    ]


def run(split: Split, estimates: Estimates, quality: np.ndarray, cost: np.ndarray,
        learn: bool, feedback_rate: float = 1.0, budget: float | None = None,
        config: LearnerConfig | None = None, seed: int = 0,
        seen: dict[str, int] | None = None):  # noqa: ANN201
    """Replay the split's stream; a learner trusts the router as much as ``seen`` (its
    prompts per model; the full router's by default) says, as ``switchman replay``'s does."""
    learner = (OnlineLearner(split.models, split.embeddings.shape[1], config,
                             prompts_seen=split.seen if seen is None else seen)
               if learn else None)
    settings = ReplaySettings(cost_weight=split.cost_weight, budget_usd=budget,
                              feedback_rate=feedback_rate, seed=seed)
    return replay(estimates, StreamOutcomes(split.models, quality, cost), settings, learner,
                  split.embeddings)


def quarters(values: np.ndarray) -> list[float]:
    n = len(values)
    return [float(values[i * n // 4:(i + 1) * n // 4].mean()) for i in range(4)]


def _q(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def report_drift(split: Split, config: LearnerConfig, feedback_rate: float,
                 rows: list[dict]) -> None:
    for drift in drifts(split):
        quality, cost = drift.outcomes(split.quality, split.cost)
        results = {
            "learn": run(split, split.full, quality, cost, True, feedback_rate, config=config,
                         seed=split.seed),
            "no-learn": run(split, split.full, quality, cost, False),
            "told": run(split, drift.told(split.full), quality, cost, False),
        }
        print(f"  drift: {drift.name} (feedback {feedback_rate:g})")
        for label, res in results.items():
            print(f"    {label:<9} quality/quarter {_q(quarters(res.quality))}  "
                  f"cost/quarter {' '.join(f'{c:.2e}' for c in quarters(res.cost))}  "
                  f"explored {res.explored.mean():.3f}")
        rows.append({"dataset": split.name, "seed": split.seed, "drift": drift.kind,
                     "feedback": feedback_rate,
                     **{label: quarters(res.quality)[3] for label, res in results.items()},
                     **{f"{label} cost": quarters(res.cost)[3]
                        for label, res in results.items()}})


def report_no_drift(split: Split, config: LearnerConfig, rows: list[dict]) -> None:
    learn = run(split, split.full, split.quality, split.cost, True, config=config,
                seed=split.seed)
    fixed = run(split, split.full, split.quality, split.cost, False)
    print(f"  no drift: learn {learn.quality.mean():.4f} at ${learn.cost.sum():.4f} "
          f"(explored {learn.explored.mean():.3f}); no-learn {fixed.quality.mean():.4f} at "
          f"${fixed.cost.sum():.4f}")
    rows.append({"dataset": split.name, "seed": split.seed,
                 "dq": learn.quality.mean() - fixed.quality.mean(),
                 "cost ratio": learn.cost.sum() / fixed.cost.sum()})


def _permutation(n: int, order: int) -> np.ndarray | None:
    """Stream order ``order`` of ``n`` steps (None for order 0: the split's own)."""
    return None if order == 0 else np.random.default_rng(1000 + order).permutation(n)


def _rows(estimates: Estimates, perm: np.ndarray | None) -> Estimates:
    if perm is None:
        return estimates
    return Estimates(estimates.models, estimates.quality[perm], estimates.cost[perm])


def reordered(split: Split, order: int) -> Split:
    """The split with its stream in another seeded order (order 0: the split's own).

    Which prompts fall in the last quarter decides much of a cold-start figure (its gap is
    a few dozen answers), so ``--orders`` pools that figure over several orders."""
    perm = _permutation(len(split.quality), order)
    if perm is None:
        return split
    return replace(split, quality=split.quality[perm], cost=split.cost[perm],
                   embeddings=split.embeddings[perm], full=_rows(split.full, perm),
                   cold=_rows(split.cold, perm), prompts=[split.prompts[i] for i in perm])


@dataclass(frozen=True)
class ColdOrder:
    """One stream order of the cold-start comparison: the reordered split, its order, and
    the cold and full routers' replays without learning (what every cold figure is against)."""

    stream: Split
    perm: np.ndarray | None
    cold: ReplayResult
    full: ReplayResult

    @property
    def gap(self) -> float:
        return quarters(self.full.quality)[3] - quarters(self.cold.quality)[3]

    def gain(self, result: ReplayResult) -> float:
        return quarters(result.quality)[3] - quarters(self.cold.quality)[3]


def cold_orders(split: Split, orders: int) -> list[ColdOrder]:
    """The cold and full routers replayed on ``orders`` orders of the stream, once."""
    found = []
    for order in range(orders):
        stream = reordered(split, order)
        found.append(ColdOrder(stream, _permutation(len(split.quality), order),
                               run(stream, stream.cold, stream.quality, stream.cost, False),
                               run(stream, stream.full, stream.quality, stream.cost, False)))
    return found


def _pooled(gains: list[float], gaps: list[float]) -> float | None:
    """Share of the summed gap the summed gain closes (None when the gap is noise)."""
    return sum(gains) / sum(gaps) if sum(gaps) > NOISE_GAP * len(gaps) else None


def report_cold(split: Split, config: LearnerConfig, baselines: list[ColdOrder],
                rows: list[dict]) -> None:
    gains, gaps = [], []
    for base in baselines:
        stream = base.stream
        learn = run(stream, stream.cold, stream.quality, stream.cost, True, config=config,
                    seed=split.seed, seen=split.cold_seen)
        gaps.append(base.gap)
        gains.append(base.gain(learn))
        if base.perm is None:
            print(f"  cold start: cold+learn {_q(quarters(learn.quality))}; "
                  f"cold {_q(quarters(base.cold.quality))}; "
                  f"full {_q(quarters(base.full.quality))}")
    # a last-quarter gap within a few answers is noise: no share of it is meaningful
    closed = _pooled(gains, gaps)
    print(f"  cold start, last quarter over {len(baselines)} stream order(s): gap "
          f"{np.mean(gaps):+.4f}, gain {np.mean(gains):+.4f}, closed "
          f"{'n/a' if closed is None else f'{closed:.0%}'}")
    rows.append({"dataset": split.name, "seed": split.seed, "closed": closed,
                 "gap": float(np.mean(gaps)), "gain": float(np.mean(gains)),
                 "gaps": gaps, "gains": gains})


def report_cold_bound(split: Split, cache: Path, family: str, baselines: list[ColdOrder],
                      rows: list[dict]) -> None:
    """What full-information data closes of the cold-start gap, at the stream's volume.

    Before the last quarter, bandit feedback has told the learner one model's outcome on
    each of 3n/4 prompts: the information of about 3n/(4m) prompts with every model's
    outcome, or 4x that if it all fell on the m/4 models worth trying. The cold router
    retrained with that many more training prompts (every model's outcome, drawn from the
    rest of the training part) shows how much of the gap that much information closes
    when it is used to the full.
    """
    n, m = len(split.quality), len(split.models)
    ids = split.train["prompt_id"].drop_duplicates().to_numpy()
    rest = np.setdiff1d(ids, split.cold_ids)
    for factor in (1, 4):
        k = min(len(rest), round(factor * 0.75 * n / m))
        extra = rest[np.random.default_rng(split.seed + 7).choice(len(rest), k, replace=False)]
        chosen = split.train["prompt_id"].isin(np.concatenate([split.cold_ids, extra]))
        router = _train_cached(cache / f"{split.key}-cold+{k}", family,
                               split.train[chosen], split.seed)
        richer = router.estimate(split.prompts)
        gaps = [base.gap for base in baselines]
        gains = [base.gain(run(base.stream, _rows(richer, base.perm), base.stream.quality,
                               base.stream.cost, False)) for base in baselines]
        closed = _pooled(gains, gaps)
        print(f"  cold start bound: cold + {k} full-information prompts ({factor}x the "
              f"stream's feedback / {m} models), over {len(baselines)} stream order(s): gap "
              f"closed {'n/a' if closed is None else f'{closed:.0%}'}")
        rows.append({"dataset": split.name, "seed": split.seed, "factor": factor, "k": k,
                     "closed": closed, "gaps": gaps, "gains": gains})


def hindsight_weight(split: Split, budget: float) -> tuple[float, float]:
    """(mean quality, spend) of the offline router at the one fixed cost weight that, known
    in hindsight, spends the budget on this stream (by bisection on the true spend).

    Maximising the estimated quality under a spend limit is a knapsack whose relaxation is
    solved by one such weight, so this is about what pacing the router's estimates can
    reach at best (a pacer reading the bills as they come can do a little better or
    worse): a paced replay near it loses nothing to its pacer, and what it misses of a
    target is the estimates'."""
    rows = np.arange(len(split.quality))

    def outcome(weight: float) -> tuple[float, float]:
        choice = np.argmax(split.full.quality - weight * split.full.cost, axis=1)
        return split.quality[rows, choice].mean(), split.cost[rows, choice].sum()

    low, high = 0.0, 1.0
    while outcome(high)[1] > budget and high < 1e12:
        low, high = high, high * 4
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if outcome(middle)[1] > budget else (low, middle)
    return outcome(high)


def report_budget(split: Split, config: LearnerConfig, rows: list[dict]) -> None:
    best = int(np.argmax(split.quality.mean(axis=0)))
    best_quality, best_spend = split.quality[:, best].mean(), split.cost[:, best].sum()
    for share in (0.25, 0.5):
        budget = share * best_spend
        quality, spend = hindsight_weight(split, budget)
        print(f"  budget {share:.0%}, the router at the fixed cost weight that spends it in "
              f"hindsight: quality {quality / best_quality:.1%} of best single (spend/budget "
              f"{spend / budget:.3f})")
        rows.append({"dataset": split.name, "seed": split.seed, "share": share,
                     "learn": None, "quality ratio": quality / best_quality})
        for learn in (True, False):
            res = run(split, split.full, split.quality, split.cost, learn, budget=budget,
                      config=config, seed=split.seed)
            worst = float(np.max(np.cumsum(res.cost)) / budget)
            ratio = res.quality.mean() / best_quality
            print(f"  budget {share:.0%} of best single (${budget:.4f}), "
                  f"{'learn   ' if learn else 'no-learn'}: max spend/budget {worst:.3f}, "
                  f"quality {res.quality.mean():.4f} = {ratio:.1%} of best single "
                  f"({best_quality:.4f}); refused {int((res.choice < 0).sum())}")
            rows.append({"dataset": split.name, "seed": split.seed, "share": share,
                         "learn": learn, "max spend/budget": worst, "quality ratio": ratio})


def report_speed(split: Split, config: LearnerConfig) -> dict[str, float]:
    learner = OnlineLearner(split.models, split.embeddings.shape[1], config)
    contexts = learner.contexts(split.embeddings, split.full)
    rng = np.random.default_rng(0)
    passes = []  # the machine is shared: of 3 passes over the stream, the least disturbed
    for _ in range(3):
        learner = OnlineLearner(split.models, split.embeddings.shape[1], config)
        decide, update = [], []
        for step, context in enumerate(contexts):
            start = time.perf_counter()
            decision = learner.decide(context, split.cost_weight)
            decide.append(time.perf_counter() - start)
            quality, cost = split.quality[step, decision.index], split.cost[step, decision.index]
            start = time.perf_counter()
            learner.update(decision.model, context, float(quality), float(cost))
            update.append(time.perf_counter() - start)
        passes.append((np.median(decide), np.median(update)))
    single = []
    prompts = [f"probe {i}: {rng.integers(1e9)} what is the capital of France?" for i in range(200)]
    for prompt in prompts:
        start = time.perf_counter()
        split.router.estimate([prompt])
        single.append(time.perf_counter() - start)
    times = {"decide": min(p[0] for p in passes) * 1e6, "update": min(p[1] for p in passes) * 1e6,
             "router": np.median(single) * 1e6}
    # context() per request: one (embedding x projection) product, included in "decide"'s
    # budget for the gateway, measured apart here because the replay batches it
    one = split.full.rows(slice(0, 1))
    context_times = []
    for _ in range(200):
        start = time.perf_counter()
        learner.context(split.embeddings[0], one)
        context_times.append(time.perf_counter() - start)
    times["context"] = np.median(context_times) * 1e6
    # what a gateway pays to share the learned state (publish) and to take another's (sync)
    publish, sync = [], []
    for _ in range(20):
        start = time.perf_counter()
        text = json.dumps(learner.to_state())
        publish.append(time.perf_counter() - start)
        start = time.perf_counter()
        OnlineLearner.from_state(json.loads(text))
        sync.append(time.perf_counter() - start)
    times["publish"], times["sync"] = np.median(publish) * 1e3, np.median(sync) * 1e3
    times["state_kb"] = len(text) / 1e3
    times["load"] = os.getloadavg()[0]
    print(f"  speed (load average {times['load']:.1f} on {os.cpu_count()} cores): learner "
          f"decision p50 {times['decide']:.1f} us + context "
          f"{times['context']:.1f} us, update p50 {times['update']:.1f} us "
          f"(the router's own single-prompt estimate p50 {times['router']:.0f} us); "
          f"learner state {times['state_kb']:.0f} kB, written p50 {times['publish']:.2f} ms, "
          f"read p50 {times['sync']:.2f} ms")
    return times


def _share(group: list[dict]) -> str:
    closed = _pooled([g for r in group for g in r["gains"]],
                     [g for r in group for g in r["gaps"]])
    return "n/a" if closed is None else f"{closed:.0%}"


def print_summary(rows: dict[str, list[dict]], speeds: list[dict[str, float]]) -> None:
    """Means over seeds, against the issue's targets."""
    print("\n## summary (mean over seeds)")
    for name in dict.fromkeys(r["dataset"] for r in rows["none"]):
        none = [r for r in rows["none"] if r["dataset"] == name]
        print(f"\n### {name}")
        print(f"no drift: learn - no-learn quality {np.mean([r['dq'] for r in none]):+.4f} "
              f"(target >= -0.003), cost ratio {np.mean([r['cost ratio'] for r in none]):.3f} "
              f"(target <= 1); per seed "
              + " ".join(f"{r['dq']:+.4f}/{r['cost ratio']:.3f}" for r in none))
        print("drift, last-quarter quality: learn | told | no-learn (learn - told, target >= "
              "-0.015); feedback 1 and 0.1")
        drift_rows = [r for r in rows["drift"] if r["dataset"] == name]
        for kind in dict.fromkeys(r["drift"] for r in drift_rows):
            for feedback in (1.0, 0.1):
                group = [r for r in drift_rows if r["feedback"] == feedback
                         and r["drift"] == kind]
                if not group:
                    continue
                learn, told, fixed = (np.mean([r[k] for r in group])
                                      for k in ("learn", "told", "no-learn"))
                costs = [np.mean([r[f"{k} cost"] for r in group])
                         for k in ("learn", "told", "no-learn")]
                print(f"  {kind:<14} F={feedback:<4g} {learn:.4f} | {told:.4f} | "
                      f"{fixed:.4f}  ({learn - told:+.4f})  cost {costs[0]:.2e} | "
                      f"{costs[1]:.2e} | {costs[2]:.2e}")
        cold = [r for r in rows["cold"] if r["dataset"] == name]
        print("cold start, last quarter: gap full - cold / gain learn - cold / share closed "
              "(target >= 50%) per seed: "
              + "; ".join(f"{r['gap']:+.4f} / {r['gain']:+.4f} / "
                          + ("n/a" if r["closed"] is None else f"{r['closed']:.0%}")
                          for r in cold)
              + f"; pooled over seeds and orders: {_share(cold)}")
        bound = [r for r in rows["cold bound"] if r["dataset"] == name]
        for factor in sorted({r["factor"] for r in bound}):
            group = [r for r in bound if r["factor"] == factor]
            print(f"cold start bound, {factor}x the feedback as full-information prompts: "
                  "share closed per seed "
                  + " ".join("n/a" if r["closed"] is None else f"{r['closed']:.0%}"
                             for r in group)
                  + f"; pooled {_share(group)}")
        for share in (0.25, 0.5):
            hindsight = [r["quality ratio"] for r in rows["budget"] if r["dataset"] == name
                         and r["share"] == share and r["learn"] is None]
            print(f"budget {share:.0%} hindsight fixed weight (about the best pacing of "
                  f"these estimates): quality {np.mean(hindsight):.1%} of best single")
            for learn in (True, False):
                group = [r for r in rows["budget"] if r["dataset"] == name
                         and r["share"] == share and r["learn"] == learn]
                print(f"budget {share:.0%} {'learn' if learn else 'no-learn':<8}: max spend/"
                      f"budget {max(r['max spend/budget'] for r in group):.3f} (target <= 1), "
                      f"quality {np.mean([r['quality ratio'] for r in group]):.1%} of best single"
                      + (" (target >= 95%)" if share == 0.25 else ""))
    if speeds:
        print(f"\nspeed: decision p50 {np.median([s['decide'] for s in speeds]):.1f} us + "
              f"context {np.median([s['context'] for s in speeds]):.1f} us, update p50 "
              f"{np.median([s['update'] for s in speeds]):.1f} us (target < 100 us each); "
              f"router estimate p50 {np.median([s['router'] for s in speeds]):.0f} us; "
              f"learner state written p50 {np.median([s['publish'] for s in speeds]):.2f} ms, "
              f"read {np.median([s['sync'] for s in speeds]):.2f} ms")


def _settings(pairs: list[str]) -> dict[str, object]:
    """``--learner KEY=VALUE`` overrides, each value typed as the default it replaces."""
    defaults = LearnerConfig()
    settings: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        default = getattr(defaults, key, None)
        if default is None or not value:
            raise ValueError(f"--learner {pair!r}: expected KEY=VALUE with a known key")
        if isinstance(default, bool):
            settings[key] = value.lower() in ("1", "true", "yes")
        else:
            settings[key] = type(default)(value)
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["mmlupro", "routerbench"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--router", default="default", help="router family (default: default)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/switchman-online"),
                        help="where trained routers and stream estimates are kept")
    parser.add_argument("--tune", action="store_true",
                        help="inner splits of the training parts (what defaults are tuned on)")
    parser.add_argument("--cold-bound", action="store_true",
                        help="also retrain the cold router with as much full-information "
                             "data as the stream's feedback holds (2 fits per split)")
    parser.add_argument("--orders", type=int, default=1,
                        help="stream orders the cold-start figures are pooled over (the "
                             "split's own first)")
    parser.add_argument("--learner", action="append", default=[], metavar="KEY=VALUE",
                        help="a learner setting to override (switchman.learning.config), "
                             "repeatable: what tuning runs compare")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"routing data not found at {DATA}", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    try:
        config = LearnerConfig.from_dict(_settings(args.learner))
    except ValueError as error:
        parser.error(str(error))
    rows: dict[str, list[dict]] = {"none": [], "drift": [], "cold": [], "cold bound": [],
                                   "budget": []}
    speeds = []
    for name in args.datasets:
        for seed in args.seeds:
            started = time.perf_counter()
            split = load_split(name, seed, args.router, args.cache, args.tune)
            print(f"\n## {name}, seed {seed}{' (tuning split)' if args.tune else ''}: "
                  f"{len(split.quality)} stream prompts, {len(split.models)} models, cost "
                  f"weight {split.cost_weight:.4g} ({time.perf_counter() - started:.0f} s to "
                  "load or train)")
            report_no_drift(split, config, rows["none"])
            report_drift(split, config, 1.0, rows["drift"])
            report_drift(split, config, 0.1, rows["drift"])
            baselines = cold_orders(split, args.orders)
            report_cold(split, config, baselines, rows["cold"])
            if args.cold_bound:
                report_cold_bound(split, args.cache, args.router, baselines,
                                  rows["cold bound"])
            report_budget(split, config, rows["budget"])
            if seed == args.seeds[0]:
                speeds.append(report_speed(split, config))
    print_summary(rows, speeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
