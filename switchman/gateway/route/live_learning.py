"""One router's online learner inside the gateway: it decides, remembers, learns and shares.

The learner itself (:class:`switchman.learning.learner.OnlineLearner`) is the one
``switchman replay`` measures; this module gives it a gateway's life:

* **deciding**: a routed request's plan is ordered by the learner's corrected utility, and
  its chosen model may be an exploration (bounded by ``routers[].explore_share``, never
  outside the request's eligible models, never for a request that sets ``explore: false``);
* **remembering**: each routed response's learning context is kept in the state store
  (bounded) under its response id, so that feedback arriving long after, on any replica,
  can be learned from;
* **learning**: the measured cost of every answer, the score of every rated one;
* **sharing and surviving**: learning is immediate, sharing is batched. Writing the whole
  state costs milliseconds (far more than the observation it adds), so it is written to the
  store, with a version number, at most every ``PUBLISH_INTERVAL_S`` (the gateway flushes
  what is left on that beat and at shutdown), and to a snapshot file beside the decision log
  (which keeps it across restarts of a gateway without Redis) at most every
  ``SNAPSHOT_INTERVAL_S``. Other replicas load a newer version before deciding (checked at
  most every ``SYNC_INTERVAL_S``); observations of this replica's that the loaded state does
  not hold yet are replayed onto it, so loading another's state loses none of them. Two
  replicas publishing within the same instant may still lose one's latest observations (the
  later write wins): a few observations now and then, never the state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Any

import numpy as np

from switchman.estimates import Estimates
from switchman.learning.config import LearnerConfig
from switchman.learning.context import Context
from switchman.learning.learner import OnlineLearner
from switchman.state import StateStore, StoreUnavailable

logger = logging.getLogger(__name__)

_CONTEXTS, _STATE, _VERSION = "learn_contexts", "learner_state", "learner_version"
#: Response contexts kept for feedback at most (oldest forgotten first).
MAX_CONTEXTS = 100_000
#: A replica looks for another's newer learner state at most this often.
SYNC_INTERVAL_S = 0.25
#: Learned state is written to the store at most this often, and to the snapshot file at
#: most every SNAPSHOT_INTERVAL_S (both again at shutdown).
PUBLISH_INTERVAL_S = 0.1
SNAPSHOT_INTERVAL_S = 2.0
#: Observations kept for replay onto another replica's state at most (a store that stays
#: unreachable would otherwise grow the list without end).
MAX_UNSHARED = 10_000


@dataclass(frozen=True)
class _Observation:
    """One outcome learned here and not yet in the shared state."""

    model: str
    context: Context
    quality: float | None
    cost: float | None


class LiveLearner:
    """The learner of router ``name``, with its store and snapshot file."""

    def __init__(self, name: str, models: Sequence[str], embedding_dim: int,
                 config: LearnerConfig, store: StateStore, snapshot: Path | None,
                 prompts_seen: Mapping[str, float] | None = None) -> None:
        """``prompts_seen``: per model, the prompts the router knows it from (how wide the
        learner's prior on it is; see ``OnlineLearner``)."""
        self.name = name
        self._store = store
        self._snapshot = snapshot
        self._version = 0
        self._synced_at = self._published_at = self._saved_at = 0.0
        self._unshared: list[_Observation] = []
        restored = self._restored(embedding_dim)
        if restored is None:
            self.learner = OnlineLearner(models, embedding_dim, config, None, prompts_seen)
        else:  # models the saved state lacks (added to the pool since) start as they should
            self.learner = restored
            for model, prompts in (prompts_seen or {}).items():
                restored.prompts_seen.setdefault(model, float(prompts))
        store.bound(_CONTEXTS, MAX_CONTEXTS)

    def _restored(self, embedding_dim: int) -> OnlineLearner | None:
        """The learner as last saved: the store's version if it has one, else the file's."""
        state = None
        try:
            state = self._store.get(_STATE, self.name)
            self._version = self._store.add(_VERSION, self.name, 0)
        except StoreUnavailable as exc:
            logger.warning("router %s: learner state store unreachable (%s)", self.name, exc)
        if state is None and self._snapshot is not None and self._snapshot.is_file():
            state = json.loads(self._snapshot.read_text()).get(self.name)
        if state is None:
            return None
        learner = OnlineLearner.from_state(state)
        if learner.projection.input_dim != embedding_dim:
            logger.warning("router %s: saved learner state is for another encoder; starting "
                           "afresh", self.name)
            return None
        return learner

    def sync(self) -> None:
        """Load another replica's newer state, if there is one (throttled)."""
        now = monotonic()
        if now - self._synced_at < SYNC_INTERVAL_S:
            return
        self._synced_at = now
        try:
            version = self._store.add(_VERSION, self.name, 0)
            if version > self._version:
                state = self._store.get(_STATE, self.name)
                if state is not None:
                    self.learner = OnlineLearner.from_state(state)
                    for seen in self._unshared:  # learned here since our last publish
                        self._update(seen)
                self._version = version
        except StoreUnavailable:
            pass  # keep learning locally; the store's outage is logged by the store

    def context(self, embedding: np.ndarray, estimates: Estimates) -> Context:
        return self.learner.context(embedding, estimates)

    def plan(self, context: Context, cost_weight: float, eligible: np.ndarray,
             explore: bool) -> tuple[list[str], bool]:
        """Eligible models, the learner's choice first then by corrected utility; and
        whether the choice is an exploration."""
        self.sync()
        choice = self.learner.decide(context, cost_weight, eligible, explore)
        if choice.model is None:
            return [], False
        utility = choice.utilities
        order = [context.models[j] for j in np.argsort(-utility, kind="stable")
                 if np.isfinite(utility[j]) and j != choice.index]
        return [choice.model, *order], choice.explored

    def remember(self, response_id: str, model: str, context: Context, cost: float) -> None:
        """Keep the answered request's context for its feedback, and learn from its bill."""
        try:
            self._store.put(_CONTEXTS, response_id, [self.name, model, context.to_state()])
        except StoreUnavailable as exc:
            logger.warning("router %s: context of %s not kept (%s)", self.name, response_id, exc)
        if model in context.models:
            self._learn(_Observation(model, context, None, cost))

    def learn_score(self, model: str, context: Context, score: float) -> None:
        """Learn from a response's score (shared within ``PUBLISH_INTERVAL_S``)."""
        self.sync()
        self._learn(_Observation(model, context, score, None))
        self.flush()

    def _learn(self, seen: _Observation) -> None:
        self._update(seen)
        if len(self._unshared) < MAX_UNSHARED:
            self._unshared.append(seen)

    def _update(self, seen: _Observation) -> None:
        self.learner.update(seen.model, seen.context, quality=seen.quality, cost=seen.cost)

    def flush(self, force: bool = False) -> None:
        """Share what was learned since the last write, if it is time (or ``force``)."""
        now = monotonic()
        if self._unshared and (force or now - self._published_at >= PUBLISH_INTERVAL_S):
            self.publish()
        if self._snapshot is not None and self._saved_at < self._published_at and (
                force or now - self._saved_at >= SNAPSHOT_INTERVAL_S):
            self.save()

    def publish(self) -> None:
        """Write the state where other replicas, and a restart, will find it."""
        state = self.learner.to_state()
        self._unshared.clear()
        self._published_at = monotonic()
        try:
            self._store.put(_STATE, self.name, state)
            self._version = self._store.add(_VERSION, self.name, 1)
        except StoreUnavailable as exc:
            logger.warning("router %s: learner state not shared (%s)", self.name, exc)

    def save(self) -> None:
        """The snapshot file, with this router's state replaced (others' kept)."""
        assert self._snapshot is not None
        saved: dict[str, Any] = {}
        if self._snapshot.is_file():
            saved = json.loads(self._snapshot.read_text())
        saved[self.name] = self.learner.to_state()
        tmp = self._snapshot.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved))
        tmp.replace(self._snapshot)
        self._saved_at = monotonic()


def recalled(store: StateStore, response_id: str) -> tuple[str, str, Context] | None:
    """(router, model, context) of a routed response, if it is still remembered."""
    found = store.get(_CONTEXTS, response_id)
    if found is None:
        return None
    if isinstance(found, dict):  # as an earlier version kept it
        return found["router"], found["model"], Context.from_state(found["context"])
    router, model, context = found
    return router, model, Context.from_state(context)
