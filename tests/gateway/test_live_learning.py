"""A router's live learner shares what it learns in batches and loses nothing to a replica's
newer state: observations not yet shared are replayed onto the state it loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchman.estimates import Estimates
from switchman.gateway.route import live_learning
from switchman.gateway.route.live_learning import LiveLearner
from switchman.learning.config import LearnerConfig
from switchman.learning.learner import OnlineLearner
from switchman.state import LocalStore

MODELS = ("a", "b", "c")
DIM = 8


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(live_learning, "monotonic", fake)
    return fake


def _replica(store: LocalStore, snapshot: Path | None = None) -> LiveLearner:
    return LiveLearner("r", MODELS, DIM, LearnerConfig(explore=False), store, snapshot)


def _context(learner: LiveLearner, seed: int):
    rng = np.random.default_rng(seed)
    embedding = rng.standard_normal(DIM)
    estimates = Estimates(MODELS, rng.uniform(0.3, 0.8, (1, 3)), np.full((1, 3), 1e-3))
    return learner.context(embedding / np.linalg.norm(embedding), estimates)


def _version(store: LocalStore) -> int:
    return store.add("learner_version", "r", 0)


def test_scores_are_shared_at_most_once_per_interval_and_flushed(clock: Clock) -> None:
    store = LocalStore()
    replica = _replica(store)
    replica.learn_score("a", _context(replica, 0), 1.0)
    assert _version(store) == 1  # the first score is shared at once
    clock.now += live_learning.PUBLISH_INTERVAL_S / 2
    replica.learn_score("b", _context(replica, 1), 0.0)
    assert _version(store) == 1  # too soon: learned here, not yet shared
    replica.flush()
    assert _version(store) == 1
    clock.now += live_learning.PUBLISH_INTERVAL_S
    replica.flush()  # the gateway's beat
    assert _version(store) == 2
    shared = OnlineLearner.from_state(store.get("learner_state", "r"))
    assert shared.to_state() == replica.learner.to_state()


def test_a_newer_state_from_another_replica_keeps_this_ones_unshared_outcomes(
        clock: Clock) -> None:
    store = LocalStore()
    first, second = _replica(store), _replica(store)
    contexts = [_context(first, seed) for seed in range(3)]
    first.learn_score("a", contexts[0], 1.0)  # shared
    second.learn_score("b", contexts[1], 0.0)  # loads the first's state, adds its own, shares
    first.learn_score("c", contexts[2], 1.0)  # too soon to share, and to look for news
    clock.now += live_learning.SYNC_INTERVAL_S
    first.sync()  # loads the second's state: it lacks the score of "c"

    expected = OnlineLearner(MODELS, DIM, LearnerConfig(explore=False),
                             first.learner.projection)
    for model, context, score in (("a", contexts[0], 1.0), ("b", contexts[1], 0.0),
                                  ("c", contexts[2], 1.0)):
        expected.update(model, context, quality=score)
    probe = _context(first, 9)
    np.testing.assert_allclose(first.learner.posterior(probe).quality,
                               expected.posterior(probe).quality)


def test_bills_are_learned_at_once_and_the_snapshot_survives_a_restart(
        clock: Clock, tmp_path: Path) -> None:
    snapshot = tmp_path / "learners.json"
    replica = _replica(LocalStore(), snapshot)
    context = _context(replica, 0)
    for _ in range(5):
        replica.remember("resp", "a", context, cost=context.cost[0] * 10)  # 10x dearer
    assert replica.learner.posterior(context).cost[0] > 2 * context.cost[0]
    assert not snapshot.exists()  # a bill alone waits for the beat
    replica.flush(force=True)  # what the gateway does at shutdown
    restarted = _replica(LocalStore(), snapshot)  # no shared store: the file is the memory
    np.testing.assert_allclose(restarted.learner.posterior(context).cost,
                               replica.learner.posterior(context).cost)


def test_a_model_joining_after_a_restart_gets_the_prior_its_prompts_say(
        clock: Clock, tmp_path: Path) -> None:
    """The saved state knows a, b, c; the restarted gateway's pool also has "d", known from a
    10-prompt profile: it starts as wide as a fresh learner would start it, not as the rest."""
    snapshot = tmp_path / "learners.json"
    seen = {"a": 2000, "b": 2000, "c": 2000}
    replica = LiveLearner("r", MODELS, DIM, LearnerConfig(explore=False), LocalStore(),
                          snapshot, seen)
    replica.learn_score("a", _context(replica, 0), 1.0)
    replica.flush(force=True)
    grown = (*MODELS, "d")
    restarted = LiveLearner("r", grown, DIM, LearnerConfig(explore=False), LocalStore(),
                            snapshot, {**seen, "d": 10})
    fresh = OnlineLearner(grown, DIM, LearnerConfig(explore=False), replica.learner.projection,
                          {**seen, "d": 10})
    context = fresh.context(np.ones(DIM) / np.sqrt(DIM),
                            Estimates(grown, np.full((1, 4), 0.5), np.full((1, 4), 1e-3)))
    got, want = restarted.learner.posterior(context), fresh.posterior(context)
    assert got.quality_std[3] == pytest.approx(want.quality_std[3])
    assert got.quality_std[3] > 5 * got.quality_std[1]  # 2000 prompts against 10
