"""From a validated request to a ranked plan of models: eligibility, policy, stickiness.

The plan is the fallback order the executor walks (issue 4's retries and circuit breaking
act on the same list). Every exclusion keeps a human-readable reason, so "nothing is
eligible" becomes a 400 that tells the caller which constraint removed which model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from switchman import policy
from switchman.config import PoolModel
from switchman.config.budgets import BudgetConfig
from switchman.estimates import Estimates
from switchman.gateway.context import Decision, RequestContext
from switchman.gateway.errors import GatewayError, bad_request
from switchman.gateway.route.batching import EstimateBatcher, Scored
from switchman.gateway.route.live_learning import LiveLearner
from switchman.gateway.route.pacing import Pacing
from switchman.gateway.route.scoring import Scorer
from switchman.gateway.route.sticky import ConversationMemory, conversation_key
from switchman.gateway.schema import ChatRequest, Preferences, echo
from switchman.learning.context import Context
from switchman.ledger import BudgetLedger
from switchman.pool import Model


@dataclass(slots=True)
class RouterEntry:
    """A router name, its scorer, and whether scoring is cheap enough to do alone."""

    name: str
    scorer: Scorer
    cost_weight: float
    #: Score each request alone on the event loop (a prior costs microseconds). A trained
    #: router scores the prompts up to ``INLINE_MAX_CHARS`` that arrive in the same loop
    #: turn together on the event loop (``batcher``), longer ones in a worker thread.
    inline: bool = True
    fallbacks: tuple[str, ...] = ()  # pinned chain tried right after the chosen model
    learner: LiveLearner | None = None  # set when the router learns online
    batcher: EstimateBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = EstimateBatcher(self.score)

    def score(self, texts: Sequence[str]) -> Scored:
        """The router's estimates for ``texts`` and, when it learns online, their
        embeddings."""
        if self.learner is None:
            return self.scorer.estimate(texts), None
        return self.scorer.estimate_embedded(texts)  # type: ignore[attr-defined]


#: A trained router encodes and scores a prompt of this size in about a millisecond, less
#: than a hop to a worker thread costs under load (GIL hand-offs); longer prompts, whose
#: tokenising grows with length, go to a thread so the event loop never stalls on one.
INLINE_MAX_CHARS = 8000


async def score_request(entry: RouterEntry, text: str) -> Scored:
    """``text``'s estimates and embedding: alone for a prior, with the loop turn's other
    prompts for a trained router, in a worker thread for a long prompt."""
    if entry.inline:
        return entry.score([text])
    if len(text) <= INLINE_MAX_CHARS:
        return await entry.batcher.estimate(text)
    return await asyncio.to_thread(entry.score, [text])


def expected_cost(model: Model, req: ChatRequest) -> float:
    """Up-front dollar estimate: estimated prompt tokens + expected completion tokens."""
    out = model.typical_output_tokens
    if req.max_tokens is not None:
        out = min(out, req.max_tokens)
    return model.cost_usd(req.prompt_tokens, out)


class RoutingTable:
    """Knows the pool, the routers and which models are callable; decides per request."""

    def __init__(self, models: Mapping[str, PoolModel], routers: Mapping[str, RouterEntry],
                 unavailable: Mapping[str, str], memory: ConversationMemory,
                 ledger: BudgetLedger | None = None) -> None:
        self.models = dict(models)
        self.routers = dict(routers)
        self.unavailable = dict(unavailable)
        self.memory = memory
        self.ledger = ledger if ledger is not None and ledger.budgets else None
        self.pacing = Pacing(self.ledger) if self.ledger is not None else None
        self.known_names = frozenset(self.models)

    async def decide(self, ctx: RequestContext) -> Decision:
        """The plan for ``ctx.req``: a pinned model's, or its router's (see
        :func:`score_request` for where its estimate is made)."""
        req = ctx.req
        assert req is not None, "decide() needs a parsed request"
        model = self.models.get(req.model)
        if model is not None:
            if self.ledger is not None:
                ctx.budgets = self.ledger.covering(ctx.key, None)
            return self._pinned(model, req)
        entry = self.routers.get(req.model)
        if entry is None:
            raise GatewayError(
                404, f"model {echo(req.model)} is neither a pool model nor a router; "
                f"available: {sorted(self.models) + sorted(self.routers)}",
                param="model", code="model_not_found")
        ctx.router = entry.name
        if self.ledger is not None:
            ctx.budgets = self.ledger.covering(ctx.key, entry.name)
        conversation = conversation_key(req.messages, req.prefs.conversation_id, ctx.key)
        est, embeddings = await score_request(entry, req.text)
        context = None
        if entry.learner is not None and embeddings is not None:
            context = entry.learner.context(embeddings[0], est)
        decision = self.routed(entry, req, self.memory.get(conversation.lookup), est, context,
                               ctx.budgets)
        decision.conversation = conversation
        return decision

    def _exclusion(self, model: PoolModel, req: ChatRequest, constraints: policy.Constraints,
                   cost: float) -> str | None:
        """Why ``model``, at an estimated ``cost``, cannot serve ``req``, or None. The
        caller's constraints are the policy's rules; the rest only the gateway knows."""
        if model.name in self.unavailable:
            return self.unavailable[model.name]
        why = constraints.model_reason(model.name)
        if why is not None:
            return why
        need = req.prompt_tokens + (req.max_tokens or 1)
        if need > model.context_window:
            return (f"context window {model.context_window} < ~{req.prompt_tokens} prompt "
                    f"tokens + {req.max_tokens or 1} max_tokens")
        missing = req.needs.difference(model.capabilities)
        if missing:
            return f"lacks {', '.join(sorted(missing))}"
        return constraints.cost_reason(cost)

    def _with_fallbacks(self, plan: list[str], req: ChatRequest, constraints: policy.Constraints,
                        router_chain: tuple[str, ...] = ()) -> list[str]:
        """The plan with pinned chains spliced in after its first model, or cut to that
        model when the request forbids fallback. Chained models must be eligible too."""
        if not req.prefs.fallback:
            return plan[:1]
        chain = [*self.models[plan[0]].fallbacks, *router_chain]
        if not chain:
            return plan
        head = [plan[0]]
        for name in chain:
            model = self.models[name]
            if name not in head and self._exclusion(
                    model, req, constraints, expected_cost(model, req)) is None:
                head.append(name)
        return head + [name for name in plan[1:] if name not in head]

    def _pinned(self, model: PoolModel, req: ChatRequest) -> Decision:
        constraints = _constraints(req.prefs)
        why = self._exclusion(model, req, constraints, expected_cost(model, req))
        if why is not None:
            raise bad_request(f"model {model.name!r} cannot serve this request: {why}",
                              "model", code="model_not_eligible")
        plan = self._with_fallbacks([model.name], req, constraints)
        costs = {name: expected_cost(self.models[name], req) for name in plan}
        return Decision(None, plan, "pinned by request", "pinned", None, costs)

    def routed(self, entry: RouterEntry, req: ChatRequest, sticky_model: str | None,
               est: Estimates, context: Context | None = None,
               budgets: Sequence[BudgetConfig] = ()) -> Decision:
        """The plan of router ``entry`` for ``req`` from its estimates ``est`` (and, for a
        router that learns online, the learner's ``context`` of the request); the cost
        weight is paced up by the ``budgets`` covering the request."""
        prefs = req.prefs
        constraints = _constraints(prefs)
        reasons: dict[str, str] = {}
        mask = np.ones((1, len(est.models)), dtype=bool)
        for j, name in enumerate(est.models):
            why = self._exclusion(self.models[name], req, constraints, float(est.cost[0, j]))
            if why is not None:
                reasons[name] = why
                mask[0, j] = False
        weight = entry.cost_weight if prefs.cost_weight is None else prefs.cost_weight
        paced: list = []
        if budgets and self.pacing is not None:
            weight, paced = self.pacing.weight(budgets, weight)
        explored = False
        if entry.learner is not None and context is not None:
            order, explored = entry.learner.plan(context, weight, mask[0], prefs.explore)
        else:
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
        if paced:
            Pacing.record(paced, costs[order[0]], est.quality[0], est.cost[0], mask[0])
        reason, kind = f"best utility at cost_weight={weight:g}", "utility"
        if explored:
            reason, kind = f"exploring (online learning) at cost_weight={weight:g}", "explore"
        elif sticky_model is not None:
            if sticky_model in order:
                order.remove(sticky_model)
                order.insert(0, sticky_model)
                reason, kind = "sticky conversation", "sticky"
            else:
                reason += f" (sticky {sticky_model} ineligible)"
        order = self._with_fallbacks(order, req, constraints, entry.fallbacks)
        for name in order:
            if name not in costs:
                costs[name] = expected_cost(self.models[name], req)
        decision = Decision(entry.name, order, reason, kind, weight, costs)
        if entry.learner is not None and context is not None:
            decision.learning = _Answered(entry.learner, context)
        return decision


class _Answered:
    """Tells a router's learner how a request it planned was answered."""

    __slots__ = ("_context", "_learner")

    def __init__(self, learner: LiveLearner, context: Context) -> None:
        self._learner, self._context = learner, context

    def answered(self, request_id: str, model: str, cost_usd: float) -> None:
        self._learner.remember(request_id, model, self._context, cost_usd)


_NO_CONSTRAINTS = policy.Constraints()


def _constraints(prefs: Preferences) -> policy.Constraints:
    """The caller's constraints as the policy states them (shared when there are none)."""
    if prefs.allowed_models is None and not prefs.excluded_models \
            and prefs.max_cost_usd is None:
        return _NO_CONSTRAINTS
    return policy.Constraints.of(prefs.allowed_models, prefs.excluded_models,
                                 prefs.max_cost_usd)
