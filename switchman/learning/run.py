"""``switchman replay`` end to end: load a router and a stream, replay it, write the results.

The router is used through its public API only (``Router.load``, ``features``,
``estimate_features``): the stream's prompts are featurised in chunks (memory stays flat),
their embeddings kept for the learner's context and their offline estimates for the policy.
Models the stream has no outcomes for cannot be chosen (their answer could not be read);
``--models`` narrows the choice further.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from switchman.data import load_outcomes, to_matrices
from switchman.estimates import Estimates
from switchman.learning.config import LearnerConfig
from switchman.learning.learner import OnlineLearner
from switchman.learning.replay import ReplaySettings, StreamOutcomes, replay
from switchman.learning.report import run_summary, single_summary, write_plot
from switchman.router import Router

log = logging.getLogger(__name__)

#: Prompts featurised at once (hashed n-grams take ~20 KB per prompt while they live).
_CHUNK = 1024


@dataclass(frozen=True)
class ReplayRequest:
    """The options of one ``switchman replay`` run."""

    router: Path
    stream: Path
    out: Path
    learn: bool = True
    budget_usd: float | None = None
    cost_weight: float | None = None
    models: Sequence[str] | None = None
    feedback_rate: float = 1.0
    seed: int = 0


def _estimate(router: Router, prompts: list[str]) -> tuple[Estimates, np.ndarray]:
    """The router's estimates and embeddings for ``prompts``, featurised chunk by chunk."""
    parts, embeddings = [], []
    for start in range(0, len(prompts), _CHUNK):
        features = router.features(prompts[start:start + _CHUNK],
                                   show_progress=len(prompts) > _CHUNK)
        parts.append(router.estimate_features(features))
        embeddings.append(features.embeddings)
    quality = np.vstack([p.quality for p in parts])
    cost = np.vstack([p.cost for p in parts])
    return Estimates(router.models, quality, cost), np.vstack(embeddings)


def _eligible(models: tuple[str, ...], asked: Sequence[str] | None) -> np.ndarray:
    """Which of ``models`` a run may choose: all, or those named by ``--models``."""
    if asked is None:
        return np.ones(len(models), dtype=bool)
    unknown = [m for m in asked if m not in models]
    if unknown:
        log.warning("--models: %s not among the router's models with stream outcomes (%s); "
                    "ignored", ", ".join(unknown), ", ".join(models))
    mask = np.array([m in set(asked) for m in models], dtype=bool)
    if not mask.any():
        raise ValueError(f"--models names none of the models this replay can use: "
                         f"{', '.join(models)}")
    return mask


def run_replay(request: ReplayRequest) -> dict[str, Any]:
    """Replay the stream and write decisions.parquet, summary.json, replay.png and, when
    learning, learner.json (the learner's final state); returns the summary."""
    if request.out.exists() and not request.out.is_dir():
        raise ValueError(f"{request.out}: is a file; --out names the replay's directory")
    router = Router.load(request.router)
    stream = to_matrices(load_outcomes(request.stream))
    usable = tuple(m for m in router.models if m in stream.models)
    missing = [m for m in router.models if m not in stream.models]
    if missing:
        log.warning("the stream has no outcomes of %s: they cannot be chosen",
                    ", ".join(missing))
    if not usable:
        raise ValueError(f"{request.stream}: none of the router's models "
                         f"({', '.join(router.models)}) has outcomes in the stream")
    columns = [stream.models.index(m) for m in usable]
    quality, cost = stream.quality[:, columns], stream.cost[:, columns]
    estimates, embeddings = _estimate(router, stream.prompts)
    estimates = estimates.select_models(usable)
    eligible = _eligible(usable, request.models)
    weight = router.default_cost_weight if request.cost_weight is None else request.cost_weight
    settings = ReplaySettings(cost_weight=0.0 if request.budget_usd is not None else weight,
                              budget_usd=request.budget_usd,
                              feedback_rate=request.feedback_rate, seed=request.seed,
                              eligible=eligible)
    offline = replay(estimates, StreamOutcomes(usable, quality, cost), settings)
    learner = None
    result = offline
    if request.learn:
        learner = OnlineLearner(usable, embeddings.shape[1], LearnerConfig(seed=request.seed),
                                prompts_seen=router.prompts_seen())
        result = replay(estimates, StreamOutcomes(usable, quality, cost), settings, learner,
                        embeddings)
    best = int(np.argmax(np.where(eligible, quality.mean(axis=0), -np.inf)))
    summary: dict[str, Any] = {
        "router": str(request.router), "stream": str(request.stream),
        "learn": request.learn, "n_steps": int(len(quality)),
        "models": [m for m, ok in zip(usable, eligible, strict=True) if ok],
        "budget_usd": request.budget_usd,
        "cost_weight": None if request.budget_usd is not None else weight,
        "feedback_rate": request.feedback_rate, "seed": request.seed,
        **run_summary(result),
        "baselines": {"no_learn": run_summary(offline),
                      "best_single": single_summary(usable[best], quality[:, best],
                                                    cost[:, best])},
    }
    if learner is not None:
        summary["learner"] = {"quality_changes_detected": learner.quality.alarms,
                              "cost_changes_detected": learner.cost.alarms,
                              "explorations": learner.explorations}
    request.out.mkdir(parents=True, exist_ok=True)
    result.decisions(list(stream.prompt_ids)).to_parquet(request.out / "decisions.parquet",
                                                         index=False)
    (request.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if learner is not None:
        (request.out / "learner.json").write_text(json.dumps(learner.to_state()) + "\n")
    runs = {"learn": (result.quality, result.cost)} if request.learn else {}
    runs["no-learn (offline router)"] = (offline.quality, offline.cost)
    runs[f"best single ({usable[best]})"] = (quality[:, best], cost[:, best])
    write_plot(request.out / "replay.png", runs, request.budget_usd)
    return summary
