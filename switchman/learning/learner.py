"""The online learner: per-model corrections of the offline router, learned from bandit feedback.

Why this shape:

* **Prior = the offline router.** For model m the learner predicts
  ``quality = q_router + theta_m . x`` with ``x = [1, q_router, prompt vector]`` and
  ``theta_m ~ N(0, diag(prior scales)^2)``: with no feedback it *is* the offline router, as in
  PILOT, and a model added with only a prior starts with the prior's full uncertainty. How
  wide that prior is depends on how much the router knows of the model: its scales shrink as
  1 / sqrt(prompts the router learned the model from), so a well-trained router's estimates
  are not moved by the noise of a few hundred binary scores, while a router trained on a
  handful of prompts (or a model known from a small profile) is corrected quickly. The
  ``q_router`` column lets one coefficient rescale the router's own estimate (a model whose
  answers all turn wrong needs ``theta = [0, -1, 0...]``); the prompt vector (see
  :mod:`switchman.learning.context`) lets the correction differ between kinds of prompts.
* **Bandit feedback only.** ``update`` takes the answering model's outcome and nothing else;
  feedback may arrive late (the caller keeps the :class:`Context`) and for few requests.
* **Forgetting, on two time scales** (:mod:`switchman.learning.filters`): slowly, every
  model's posterior relaxes back to the prior (recent outcomes weigh more, and a model not
  observed for a while regains its uncertainty, so optimism tries it again); suddenly, a
  per-model change detector restarts a model whose outcomes keep surprising it (a model
  that breaks or gets worse, a price that jumps) from a wide prior, which it keeps: the
  router was wrong about it. Quality's detector weighs each score by its likelihood
  ratio for an expected score ``change_shift`` away (:func:`_score_evidence`), since a
  score's spread depends on its level. Ticks are observations, not requests:
  sparse feedback forgets no faster than it learns. An update is one Sherman-Morrison
  (Kalman) step, O(d^2) with d = 2 + prompt dims; a decision is one batched
  (models x d x d) product. No matrix is ever inverted or decomposed.
* **Exploration by optimism, bounded.** The choice maximises ``mean + exploration * std -
  w * cost`` among *eligible* models only (the caller's mask carries every constraint). A
  choice that differs from the greedy one (``mean - w * cost``) is an exploration, and it
  spends a token from a bucket refilled by ``max_explore_share`` per decision (capacity
  ``explore_burst``): over any window of n decisions at most ``share * n + burst`` explore.
  Optimism is gap-aware: a model clearly worse than the best (by more than its uncertainty)
  is not tried, which is what lets exploration pay for itself when nothing drifts.
* **Cost.** Per model, a multiplicative correction of the router's cost estimate: the same
  kind of filter, one-dimensional, on ``log(observed / estimated)`` (a price change is a
  constant factor). Costs are known for every answered request (the bill), quality only
  with feedback, so the two are filtered on separate clocks. The expected cost is
  ``exp(mean + spread / 2)`` with the log ratios' own decayed spread: exp of a mean log is a
  geometric mean, below the arithmetic one that spending follows.

State is a few arrays per model (bounded by the pool size), saved packed
(:mod:`switchman.learning.packing`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from switchman.estimates import Estimates
from switchman.learning.config import LearnerConfig
from switchman.learning.context import Context, PromptProjection
from switchman.learning.filters import DriftingFilters
from switchman.learning.packing import pack, unpack

#: Breaks exact utility ties toward the cheaper model, as ``switchman.policy`` does.
_TIE_BREAK_WEIGHT = 1e-6
#: Costs below this are treated as this (a free answer still has a finite log ratio).
_COST_FLOOR = 1e-12
#: One cost observation counts as at most this log ratio (20x): a single prompt the router's
#: cost model misjudged (a 12x longer answer) must not reprice the model.
_MAX_LOG_RATIO = 3.0
#: The cost filter learns the mean log ratio; the expected cost is exp(mean + variance / 2)
#: (lognormal), so exp(mean) alone under-rates every model by ~3% on the dev data (log
#: ratios' std 0.15-0.26). Variances above this cap (+5%) are heavy tails (misjudged answer
#: lengths, a price change in progress), not spread to price in.
_MAX_COST_SPREAD = 0.1
#: The widest prior, as a multiple of the configured scales: a model the router knows from
#: (almost) no prompts. Wider would let one answer swing it past every other model.
_MAX_UNCERTAINTY = 5.0
#: Expected scores are taken as at least this and at most 1 minus it by the change detector:
#: a router sure of a model must still not read one wrong answer as proof of a change.
_SCORE_FLOOR = 0.02
#: Models one learner keeps state for at most (memory stays bounded whatever names arrive).
MAX_MODELS = 1024
STATE_VERSION = 2
#: Versions ``from_state`` reads: 1 kept arrays as lists of floats, 2 packs them.
_READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Posterior:
    """The learner's per-model beliefs for one context (in the context's model order)."""

    quality: np.ndarray  # posterior mean of the expected quality
    quality_std: np.ndarray  # its standard deviation
    cost: np.ndarray  # corrected expected cost


@dataclass(frozen=True)
class Decision:
    """One choice: ``index`` into the context's models (-1: no model was eligible)."""

    index: int
    model: str | None
    explored: bool
    quality: float  # the chosen model's posterior mean quality (nan when none)
    cost: float  # its corrected expected cost: what pacing plans with
    utilities: np.ndarray  # greedy utility per model, -inf where ineligible (fallback order)


class OnlineLearner:
    """Bandit corrections over an offline router; see the module docstring for the design."""

    def __init__(self, models: Sequence[str], embedding_dim: int,
                 config: LearnerConfig | None = None,
                 projection: PromptProjection | None = None,
                 prompts_seen: Mapping[str, float] | None = None) -> None:
        """``prompts_seen``: per model, the prompts the router learned it from (its training
        table's, or its profile's); it sets how wide the model's prior is. A model it does
        not name gets the configured scales as they are."""
        self.config = c = config or LearnerConfig()
        self.prompts_seen = {str(m): float(n) for m, n in (prompts_seen or {}).items()}
        self.projection = projection or PromptProjection(embedding_dim, c.dim, c.seed)
        if self.projection.input_dim != embedding_dim or self.projection.dim != c.dim:
            raise ValueError("projection does not match embedding_dim and config.dim")
        # Features are whitened by the prior scales, so every model's prior is N(0, I).
        self._scales = np.concatenate([[c.prior_bias, c.prior_scale],
                                       np.full(c.dim, c.prior_prompt)])
        self.quality = DriftingFilters(2 + c.dim, c.noise, c.halflife, c.change_slack,
                                       c.change_threshold, c.reset_scale, c.change_memory,
                                       c.change_evidence)
        # What every model shares (a router that over-rates them all): one more regression,
        # fitted to what the model's own one leaves unexplained, and the other way round;
        # its prior is as wide as the router's typical model's.
        self.shared = DriftingFilters(2 + c.dim, c.noise, c.halflife, 0.0, 0.0, 1.0, 1)
        seen = sorted(self.prompts_seen.values())
        self.shared.add(self.uncertainty(seen[len(seen) // 2] if seen else None) ** 2)
        self.cost = DriftingFilters(1, c.cost_noise, c.cost_halflife, c.change_slack,
                                    c.change_threshold, 1.0, c.change_memory)
        # per model: decayed mean square of the log cost ratio around the filter's mean
        # (same half-life as the cost filter)
        self._cost_rho = 0.5 ** (1.0 / c.cost_halflife)
        self._cost_x = np.array([c.cost_prior])  # the cost filter's one feature
        self.cost_spread = np.zeros(0)
        self.models: list[str] = []
        self._slot: dict[str, int] = {}
        self._columns: dict[tuple[str, ...], slice | np.ndarray] = {}
        self.tokens = c.explore_burst  # exploration allowance (a bucket)
        self.decisions = 0
        self.explorations = 0
        for name in models:
            self._slot_of(name)

    # -- contexts ---------------------------------------------------------------------------

    def context(self, embedding: np.ndarray, estimates: Estimates, row: int = 0) -> Context:
        """The context of prompt ``row`` of ``estimates`` (the router's), from its embedding."""
        return Context(estimates.models, self.projection(embedding),
                       np.asarray(estimates.quality[row], dtype=np.float64),
                       np.asarray(estimates.cost[row], dtype=np.float64))

    def contexts(self, embeddings: np.ndarray, estimates: Estimates) -> list[Context]:
        """Contexts of a batch of prompts (one projection product for all of them)."""
        prompts = self.projection(embeddings)
        quality = np.asarray(estimates.quality, dtype=np.float64)
        cost = np.asarray(estimates.cost, dtype=np.float64)
        return [Context(estimates.models, prompts[i], quality[i], cost[i])
                for i in range(len(prompts))]

    # -- beliefs and decisions --------------------------------------------------------------

    def uncertainty(self, prompts: float | None) -> float:
        """The prior std of a model the router knows from ``prompts`` prompts, as a multiple
        of the configured scales (1 when that is not known or ``prior_prompts`` is 0)."""
        scale = self.config.prior_prompts
        if prompts is None or scale == 0:
            return 1.0
        if prompts <= 0:
            return _MAX_UNCERTAINTY
        return min(_MAX_UNCERTAINTY, math.sqrt(scale / prompts))

    def add_model(self, name: str, uncertainty: float | None = None) -> None:
        """Start learning about model ``name`` with ``uncertainty`` times the usual prior std
        (None: as wide as ``prompts_seen`` says).

        A model the router already knows needs nothing (it is added at its first context).
        A model added with a prior only (a guess) should say how little that prior is worth:
        with uncertainty 5 its optimistic estimate is high enough that it is tried, within
        the exploration share, until its own outcomes have narrowed it.
        """
        if uncertainty is None:
            uncertainty = self.uncertainty(self.prompts_seen.get(name))
        if not uncertainty > 0:
            raise ValueError(f"uncertainty must be > 0, got {uncertainty}")
        if name in self._slot:
            raise ValueError(f"model {name!r} is already known to the learner")
        self._new_slot(name, uncertainty * uncertainty)

    def _slot_of(self, name: str) -> int:
        """The state row of model ``name``, created with the prior alone if it is new."""
        slot = self._slot.get(name)
        if slot is None:
            return self._new_slot(name, self.uncertainty(self.prompts_seen.get(name)) ** 2)
        return slot

    def _new_slot(self, name: str, prior: float) -> int:
        if len(self.models) >= MAX_MODELS:
            raise ValueError(f"the learner keeps at most {MAX_MODELS} models")
        self.models.append(name)
        self._slot[name] = slot = self.quality.add(prior)
        self.cost.add()
        self.cost_spread = np.append(self.cost_spread, 0.0)
        self._columns.clear()  # the state arrays were replaced
        return slot

    def _slots(self, models: tuple[str, ...]) -> slice | np.ndarray:
        """State rows of ``models``: a slice (a view, no copy) when they are consecutive."""
        found = self._columns.get(models)
        if found is None:
            rows = np.array([self._slot_of(m) for m in models], dtype=np.intp)
            consecutive = len(rows) > 0 and np.array_equal(
                rows, np.arange(rows[0], rows[0] + len(rows)))
            found = slice(int(rows[0]), int(rows[0]) + len(rows)) if consecutive else rows
            self._columns[models] = found
        return found

    def _design(self, context: Context) -> np.ndarray:
        """(models, d) whitened feature rows: [1, q_router, prompt] times the prior scales."""
        x = np.empty((len(context.models), self.quality.d))
        x[:] = self._common_row(context)
        x[:, 1] *= context.quality
        return x

    def _features(self, context: Context, column: int) -> np.ndarray:
        """Row ``column`` of ``_design`` alone (what an update learns from)."""
        x = self._common_row(context)
        x[1] *= context.quality[column]
        return x

    def _common_row(self, context: Context) -> np.ndarray:
        """The feature row with 1 for q_router: what every model's row shares (so the
        prompt is scaled once, not once per model)."""
        x = self._scales.copy()
        x[2:] *= context.prompt
        return x

    def posterior(self, context: Context) -> Posterior:
        """Per-model posterior mean and std of quality, and the corrected cost."""
        slots = self._slots(context.models)
        shift, variance = self.quality.predict(slots, self._design(context),
                                               self.shared if self.config.shared else None)
        log_factor = (self.config.cost_prior * self.cost.intercepts(slots)
                      + 0.5 * np.minimum(self.cost_spread[slots], _MAX_COST_SPREAD))
        return Posterior(context.quality + shift, np.sqrt(np.maximum(variance, 0.0)),
                         context.cost * np.exp(log_factor))

    def decide(self, context: Context, cost_weight: float, eligible: np.ndarray | None = None,
               explore: bool = True) -> Decision:
        """Choose among the ``eligible`` models (boolean, context order; None = all).

        ``explore=False`` (a request that opts out) makes the greedy choice, and so does an
        empty exploration bucket. Ineligible models are never chosen, explored or not.
        """
        if not cost_weight >= 0:
            raise ValueError(f"cost_weight must be a number >= 0, got {cost_weight}")
        beliefs = self.posterior(context)
        utility = beliefs.quality - (cost_weight + _TIE_BREAK_WEIGHT) * beliefs.cost
        if eligible is not None:
            eligible = np.asarray(eligible, dtype=bool)
            if eligible.shape != utility.shape:
                raise ValueError(f"eligible mask must have shape {utility.shape}")
            utility[~eligible] = -np.inf
        self.decisions += 1
        c = self.config
        self.tokens = min(c.explore_burst, self.tokens + c.max_explore_share)
        # the arrays' own argmax: np.argmax's Python wrapper costs more than the search
        greedy = int(utility.argmax())
        if not math.isfinite(utility[greedy]):
            return Decision(-1, None, False, math.nan, math.nan, utility)
        pick = greedy
        if c.explore and explore and c.exploration > 0 and self.tokens >= 1.0:
            pick = int((utility + c.exploration * beliefs.quality_std).argmax())
        explored = pick != greedy
        if explored:
            self.tokens -= 1.0
            self.explorations += 1
        return Decision(pick, context.models[pick], explored, float(beliefs.quality[pick]),
                        float(beliefs.cost[pick]), utility)

    # -- learning ---------------------------------------------------------------------------

    def update(self, model: str, context: Context, quality: float | None = None,
               cost: float | None = None) -> None:
        """Learn from model ``model``'s outcome on the request ``context`` describes.

        ``quality`` in [0, 1] (a score, or a thumbs up/down as 1/0) and ``cost`` in dollars
        are each optional: a bill without a score still corrects the cost estimate.
        """
        try:
            column = context.models.index(model)
        except ValueError:
            raise ValueError(f"model {model!r} is not among the context's models") from None
        slot = self._slot_of(model)
        if quality is not None:
            if not 0.0 <= quality <= 1.0:
                raise ValueError(f"quality must be in [0, 1], got {quality}")
            x = self._features(context, column)
            routed = float(context.quality[column])
            residual, own = quality - routed, self.quality.mean_now(slot, x)
            if self.config.shared:
                common = self.shared.mean_now(0, x)
                self.shared.observe(0, x, residual - own)
                residual -= common
            evidence = (_score_evidence(quality, routed + own, self.config.change_shift)
                        if self.config.change_evidence > 0 else None)
            self.quality.observe(slot, x, residual, evidence)
        if cost is not None:
            if not cost >= 0:
                raise ValueError(f"cost must be >= 0, got {cost}")
            ratio = math.log(max(cost, _COST_FLOOR)
                             / max(float(context.cost[column]), _COST_FLOOR))
            ratio = min(max(ratio, -_MAX_LOG_RATIO), _MAX_LOG_RATIO)
            self._observe_spread(slot, ratio)
            self.cost.observe(slot, self._cost_x, ratio)

    def _observe_spread(self, slot: int, log_ratio: float) -> None:
        """Fold one log cost ratio's squared distance from the filter's current mean into
        the model's decayed spread (what turns exp(mean) into the expected cost)."""
        mean = self.config.cost_prior * self.cost.intercept(slot)
        # the decayed count of this model's costs so far, this one included: 1 + rho + ...
        seen = float(self.cost.seen[slot]) + 1.0
        weight = (1.0 - self._cost_rho ** seen) / (1.0 - self._cost_rho)
        spread = float(self.cost_spread[slot])
        self.cost_spread[slot] = spread + ((log_ratio - mean) ** 2 - spread) / weight

    # -- state ------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-like data (arrays packed as bytes)."""
        return {
            "version": STATE_VERSION,
            "config": asdict(self.config),
            "projection": self.projection.to_state(),
            "models": list(self.models),
            "prompts_seen": dict(self.prompts_seen),
            "quality": self.quality.to_state(),
            "shared": self.shared.to_state(),
            "cost": self.cost.to_state(),
            "cost_spread": pack(self.cost_spread),
            "tokens": self.tokens,
            "decisions": self.decisions,
            "explorations": self.explorations,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OnlineLearner:
        """The learner ``to_state`` saved (a ValueError if the data do not fit together)."""
        if state.get("version") not in _READABLE_VERSIONS:
            raise ValueError(f"learner state version {state.get('version')!r} is not one of "
                             f"{_READABLE_VERSIONS}")
        config = LearnerConfig.from_dict(state["config"])
        projection = PromptProjection.from_state(state["projection"])
        # no models at first: their slots come whole from the state, not one prior at a time
        # absent from states saved before it: every model then kept the configured scales
        learner = cls([], projection.input_dim, config, projection,
                      state.get("prompts_seen") or {})
        learner.quality.load_state(state["quality"])
        learner.shared.load_state(state["shared"])
        learner.cost.load_state(state["cost"])
        models = [str(name) for name in state["models"]]
        if len(set(models)) != len(models):
            raise ValueError("learner state names a model twice")
        if not len(learner.quality) == len(learner.cost) == len(models):
            raise ValueError("learner state covers a different number of models")
        learner.models = models
        learner._slot = {name: slot for slot, name in enumerate(models)}
        # absent from states saved before it: no spread learned yet
        spread = (unpack(state["cost_spread"], "cost_spread") if "cost_spread" in state
                  else np.zeros(len(models)))
        if spread.shape != (len(models),):
            raise ValueError(f"learner state 'cost_spread' does not fit {len(models)} models")
        learner.cost_spread = spread.copy()
        learner.tokens = float(state["tokens"])
        learner.decisions = int(state["decisions"])
        learner.explorations = int(state["explorations"])
        return learner


def _score_evidence(score: float, expected: float, shift: float) -> tuple[float, float]:
    """What one score in [0, 1] says for a model whose expected score rose, and fell, by
    ``shift``: the log-likelihood ratios of a Bernoulli outcome (linear in the score, so a
    graded score counts as that share of a right answer).

    Why not the standardised residual: a score's spread depends on its expectation, so at
    0.9 a fall to 0.7 is a small residual per answer that a residual CUSUM tuned against
    false alarms at 0.5 never accumulates (on the tuning splits, a model losing a fifth of
    its right answers stayed 0.05 below a router told of it); the ratios weigh each answer
    by how much more likely it is after such a change than before.
    """
    before = min(max(expected, _SCORE_FLOOR), 1.0 - _SCORE_FLOOR)
    steps = []
    for after in (min(before + shift, 1.0 - _SCORE_FLOOR), max(before - shift, _SCORE_FLOOR)):
        steps.append(score * math.log(after / before)
                     + (1.0 - score) * math.log((1.0 - after) / (1.0 - before)))
    return steps[0], steps[1]
