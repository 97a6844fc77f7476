"""The online learner's hyper-parameters: one frozen, validated record a configuration sets.

The defaults were chosen on inner splits of the dev data's training parts
(``benchmarks/online_learning.py --tune``), never on the streams the figures are read from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class LearnerConfig:
    """How much the learner trusts the router, how fast it forgets, how much it explores."""

    #: Prompt-vector dimensions (the random projection of the router's embedding).
    dim: int = 16
    #: Prior std of a model's quality shift, of the coefficient on the router's own
    #: estimate, and of each prompt-vector coefficient: small, because the router was
    #: trained on the same kind of traffic; a detected change widens them (``reset_scale``).
    #: The coefficient's is as small as a prompt coefficient's: a model is only ever
    #: observed where it was chosen, so where its estimate beat the others', and there its
    #: outcomes fall short of its estimate (selection, not drift). Learned freely, that
    #: rescales the model's estimates everywhere and moves traffic between two models near
    #: their break-even at no gain: on the mmlupro tuning streams, 0.03 spent 1.3% more than
    #: not learning at +0.0010 quality, 0.01 0.3% less at +0.0003 (with ``reset_scale`` 20:
    #: a change alarm must still widen the prior enough for a broken model's level to fall
    #: to 0), and every drift stayed within 0.01 of a router told of it (routerbench: +0.5%
    #: against +0.03%).
    prior_bias: float = 0.02
    prior_scale: float = 0.01
    prior_prompt: float = 0.01
    #: How much the router knows of a model grows with the prompts it learned the model
    #: from, and so does how far the learner trusts it: the prior scales above hold for a
    #: model known from this many prompts and scale as sqrt(prior_prompts / n). A router
    #: trained on 4,000 prompts moves 5.6x less on the same feedback than one trained on
    #: 128, whose estimates are that much rougher; a model added from a 30-prompt profile
    #: starts 2x wider, so it is explored until its own outcomes narrow it. 0: the scales
    #: whatever n is.
    prior_prompts: float = 128.0
    #: Also learn one correction shared by all models (from every model's feedback).
    shared: bool = True
    #: Std of one quality observation around its expectation (binary scores: at most 0.5).
    noise: float = 0.5
    #: Quality observations (of any model) after which an observation's weight has halved:
    #: long, because sudden changes are the change detector's job, and what a rough router
    #: needs corrected is learned from thousands of scores (on the tuning splits, cold
    #: start closed 55% of its gap at 500, 62% at 1,000 and 64% at 2,000, no drift the
    #: same; at 2,000 a new model found worse is tried again too often, the shared
    #: correction having drifted in the meantime).
    halflife: float = 1000.0
    #: Change detection per model, by two-sided CUSUMs: of the standardised residuals
    #: (quality and cost), with ``change_slack`` and ``change_threshold``, quick on a large
    #: change; and of the scores' log-likelihood ratios for an expected score
    #: ``change_shift`` higher, and lower, than believed, alarming at ``change_evidence``
    #: nats, which also catches a small one (a model at 0.9 losing a fifth of its right
    #: answers; on the tuning splits 10 raised no alarm on any of 16 streams without drift).
    #: 0 turns either off. On an alarm the model's posterior restarts from the prior widened
    #: ``reset_scale`` times, and its last ``change_memory`` observations (those since the
    #: change began) are learned again.
    change_shift: float = 0.15
    change_evidence: float = 10.0
    change_slack: float = 0.5
    change_threshold: float = 8.0
    reset_scale: float = 20.0
    change_memory: int = 8
    #: Width of the optimism, in posterior standard deviations; 0 never explores.
    exploration: float = 1.0
    #: Largest long-run share of decisions that may explore, and the burst above it.
    max_explore_share: float = 0.05
    explore_burst: float = 5.0
    #: Prior and observation std of the log cost correction, and its half-life (in costs).
    cost_prior: float = 1.0
    cost_noise: float = 1.0
    cost_halflife: float = 200.0
    #: Whether to explore at all (a request can also opt out in ``decide``).
    explore: bool = True
    #: Seed of the prompt projection.
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("prior_bias", "prior_scale", "noise", "halflife", "cost_prior",
                    "cost_noise", "cost_halflife", "reset_scale")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"learner {name} must be > 0, got {getattr(self, name)}")
        nonnegative = ("dim", "prior_prompt", "prior_prompts", "exploration", "change_slack",
                       "change_threshold", "change_evidence")
        for name in nonnegative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"learner {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.max_explore_share <= 1 or self.explore_burst < 1:
            raise ValueError("max_explore_share must be in [0, 1] and explore_burst >= 1")
        if not 0 < self.change_shift < 1:
            raise ValueError(f"learner change_shift must be in (0, 1), got {self.change_shift}")
        if self.change_memory < 1:
            raise ValueError("change_memory must be >= 1")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LearnerConfig:
        """A config from saved or configured values; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown learner settings: {', '.join(unknown)}")
        return cls(**values)
