"""From a validated request to a ranked plan of models: eligibility, policy, stickiness.

The plan is the fallback order the executor walks (issue 4's retries and circuit breaking
act on the same list). Every exclusion keeps a human-readable reason, so "nothing is
eligible" becomes a 400 that tells the caller which constraint removed which model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from switchman import policy
from switchman.estimates import Estimates
from switchman.gateway.errors import GatewayError, bad_request
from switchman.gateway.schema import ChatRequest
from switchman.gateway.scoring import Scorer
from switchman.pool import Model


@dataclass(slots=True)
class Decision:
    """Which models to try, in order, and why the first one."""

    router: str | None
    plan: list[str]
    reason: str
    reason_kind: str
    cost_weight: float | None
    estimated_cost: dict[str, float]


@dataclass(slots=True)
class RouterEntry:
    """A router name, its scorer, and whether scoring is cheap enough for the event loop."""

    name: str
    scorer: Scorer
    cost_weight: float
    #: Always estimate on the event loop (a prior costs microseconds). A trained router's
    #: estimate runs there too for prompts up to ``INLINE_MAX_CHARS``, in a worker thread
    #: beyond that (see ``estimate_inline``).
    inline: bool = True
    fallbacks: tuple[str, ...] = ()  # pinned chain tried right after the chosen model


#: A trained router encodes and scores a prompt of this size in about a millisecond, less
#: than a hop to a worker thread costs under load (GIL hand-offs); longer prompts, whose
#: tokenising grows with length, go to a thread so the event loop never stalls on one.
INLINE_MAX_CHARS = 8000


def estimate_inline(entry: RouterEntry, text: str) -> bool:
    """Whether to score ``text`` on the event loop rather than in a worker thread."""
    return entry.inline or len(text) <= INLINE_MAX_CHARS


def expected_cost(model: Model, req: ChatRequest) -> float:
    """Up-front dollar estimate: estimated prompt tokens + expected completion tokens."""
    out = model.typical_output_tokens
    if req.max_tokens is not None:
        out = min(out, req.max_tokens)
    return model.cost_usd(req.prompt_tokens, out)


class RoutingTable:
    """Knows the pool, the routers and which models are callable; decides per request."""

    def __init__(self, models: Mapping[str, Model], routers: Mapping[str, RouterEntry],
                 unavailable: Mapping[str, str]) -> None:
        self.models = dict(models)
        self.routers = dict(routers)
        self.unavailable = dict(unavailable)
        self.known_names = frozenset(self.models)
        #: Per-model pinned fallback chains (configuration ``models[i].fallbacks``).
        self.fallbacks: dict[str, list[str]] = {}

    def _with_fallbacks(self, plan: list[str], req: ChatRequest,
                        router_chain: tuple[str, ...] = ()) -> list[str]:
        """The plan with pinned chains spliced in after its first model, or cut to that
        model when the request forbids fallback. Chained models must be eligible too."""
        if not req.prefs.fallback:
            return plan[:1]
        chain = [*self.fallbacks.get(plan[0], ()), *router_chain]
        if not chain:
            return plan
        max_cost = req.prefs.max_cost_usd
        head = [plan[0]]
        for name in chain:
            model = self.models[name]
            if name in head or self._why_not(model, req) is not None:
                continue
            if max_cost is not None and expected_cost(model, req) > max_cost:
                continue
            head.append(name)
        return head + [name for name in plan[1:] if name not in head]

    def _why_not(self, model: Model, req: ChatRequest) -> str | None:
        """Reason ``model`` cannot serve ``req`` regardless of estimates, or None."""
        if model.name in self.unavailable:
            return self.unavailable[model.name]
        prefs = req.prefs
        if prefs.allowed_models is not None and model.name not in prefs.allowed_models:
            return "not in allowed_models"
        if model.name in prefs.excluded_models:
            return "in excluded_models"
        need = req.prompt_tokens + (req.max_tokens or 1)
        if need > model.context_window:
            return (f"context window {model.context_window} < ~{req.prompt_tokens} prompt "
                    f"tokens + {req.max_tokens or 1} max_tokens")
        missing = req.needs.difference(model.capabilities)
        if missing:
            return f"lacks {', '.join(sorted(missing))}"
        return None

    def decide(self, req: ChatRequest, sticky_model: str | None = None,
               estimates: Estimates | None = None) -> Decision:
        """The plan for ``req``; ``estimates`` are the router's, if already computed."""
        model = self.models.get(req.model)
        if model is not None:
            return self._pinned(model, req)
        entry = self.routers.get(req.model)
        if entry is None:
            raise GatewayError(
                404, f"model {req.model!r} is neither a pool model nor a router; "
                f"available: {sorted(self.models) + sorted(self.routers)}",
                param="model", code="model_not_found")
        est = entry.scorer.estimate([req.text]) if estimates is None else estimates
        return self._routed(entry, req, sticky_model, est)

    def _pinned(self, model: Model, req: ChatRequest) -> Decision:
        why = self._why_not(model, req)
        cost = expected_cost(model, req)
        max_cost = req.prefs.max_cost_usd
        if why is None and max_cost is not None and cost > max_cost:
            why = f"estimated cost ${cost:.6f} > max_cost_usd ${max_cost}"
        if why is not None:
            raise bad_request(f"model {model.name!r} cannot serve this request: {why}",
                              "model", code="model_not_eligible")
        plan = self._with_fallbacks([model.name], req)
        costs = {name: expected_cost(self.models[name], req) for name in plan}
        return Decision(None, plan, "pinned by request", "pinned", None, costs)

    def _routed(self, entry: RouterEntry, req: ChatRequest, sticky_model: str | None,
                est: Estimates) -> Decision:
        prefs = req.prefs
        reasons: dict[str, str] = {}
        extra = np.ones((1, len(est.models)), dtype=bool)
        for j, name in enumerate(est.models):
            why = self._why_not(self.models[name], req)
            if why is not None:
                reasons[name] = why
                extra[0, j] = False
        constraints = None
        if prefs.max_cost_usd is not None:
            constraints = policy.Constraints.of(max_cost_usd=prefs.max_cost_usd)
            for j, name in enumerate(est.models):
                if name not in reasons and est.cost[0, j] > prefs.max_cost_usd:
                    reasons[name] = (f"estimated cost ${est.cost[0, j]:.6f} > "
                                     f"max_cost_usd ${prefs.max_cost_usd}")
        mask = policy.eligibility(est, constraints, extra)
        weight = entry.cost_weight if prefs.cost_weight is None else prefs.cost_weight
        order = policy.plan(est, weight, mask)
        if not order:
            for name in self.models:
                if name not in est.models:
                    reasons[name] = f"unknown to router {entry.name}"
            detail = "; ".join(f"{n}: {r}" for n, r in reasons.items())
            raise bad_request(f"no model of router {entry.name!r} is eligible for this "
                              f"request: {detail}", code="no_eligible_model")
        costs = {name: float(est.cost[0, j]) for j, name in enumerate(est.models)
                 if name in order}
        reason, kind = f"best utility at cost_weight={weight:g}", "utility"
        if sticky_model is not None:
            if sticky_model in order:
                order.remove(sticky_model)
                order.insert(0, sticky_model)
                reason, kind = "sticky conversation", "sticky"
            else:
                reason += f" (sticky {sticky_model} ineligible)"
        order = self._with_fallbacks(order, req, entry.fallbacks)
        for name in order:
            if name not in costs:
                costs[name] = expected_cost(self.models[name], req)
        return Decision(entry.name, order, reason, kind, weight, costs)
