"""Ending a request, in one place: metrics, accounting, stickiness, the log row, the slot.

Every request ends here exactly once, whether it was answered, failed, shed or streamed,
so what a finished request leaves behind is written once (and a budget ledger or an online
learner, fed by the same context, has one place to hook in).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from switchman.gateway.context import Decision, Outcome, RequestContext
from switchman.gateway.record.decision_log import DecisionLog, DecisionRecord
from switchman.gateway.record.metrics import GatewayMetrics
from switchman.ledger import BudgetLedger
from switchman.state import StoreUnavailable

logger = logging.getLogger(__name__)


def decision_headers(request_id: str, decision: Decision, outcome: Outcome,
                     cost: float) -> dict[str, str]:
    return {"x-switchman-request-id": request_id,
            "x-switchman-model": outcome.model.name,
            "x-switchman-router": decision.router or "none",
            "x-switchman-reason": outcome.reason,
            "x-switchman-cost-usd": f"{cost:.8f}",
            "x-switchman-tried": ",".join(outcome.tried)}


class Settler:
    """Writes what a finished request leaves behind; see :meth:`settle`."""

    def __init__(self, metrics: GatewayMetrics, log: DecisionLog,
                 remember: Callable[[str, str], None], store_prompts: bool,
                 ledger: BudgetLedger | None = None) -> None:
        self.metrics = metrics
        self.log = log
        self.remember = remember  # (conversation key, model): stickiness for the next turn
        self.store_prompts = store_prompts
        self.ledger = ledger

    def settle(self, ctx: RequestContext, status: int) -> None:
        """End ``ctx`` with ``status`` (idempotent: a second call does nothing)."""
        if ctx.settled:
            return
        ctx.settled = True
        latency = time.perf_counter() - ctx.started
        m = self.metrics
        # Label values must come from configuration, never from what a client typed.
        router = ctx.router or "none"
        outcome, decision = ctx.outcome, ctx.decision
        if outcome is None or decision is None:
            m.child(m.errors, ctx.error_kind or "error").inc()
            m.child(m.requests, router, "none", str(status)).inc()
        else:
            model = outcome.model.name
            series = m.answered(router, model, decision.reason_kind, status)
            series.overhead.observe(outcome.upstream_start - ctx.started)
            series.decisions.inc()
            series.requests.inc()
            series.latency.observe(latency)
            series.prompt_tokens.inc(ctx.prompt_tokens)
            series.completion_tokens.inc(ctx.completion_tokens)
            series.cost.inc(ctx.cost_usd)
            self._pay(ctx)
            if status != 200:
                m.child(m.errors, ctx.error_kind or "stream_error").inc()
            else:
                if decision.conversation is not None and ctx.reply is not None:
                    self.remember(decision.conversation.after(ctx.reply), model)
                if decision.learning is not None:
                    decision.learning.answered(ctx.request_id, model, ctx.cost_usd)
        if ctx.logged:
            self.log.record(self._row(ctx, status, latency))
        ctx.free_slot()

    def _pay(self, ctx: RequestContext) -> None:
        """The measured cost replaces the call's budget holds (or is charged as it is)."""
        if self.ledger is None or not (ctx.reservations or ctx.charge_budgets):
            return
        try:
            self.ledger.settle(ctx.reservations, ctx.cost_usd)
            self.ledger.charge(ctx.charge_budgets, ctx.cost_usd)
        except StoreUnavailable as exc:
            logger.warning("budget ledger unreachable (%s): request %s not settled",
                           exc, ctx.request_id)

    def _row(self, ctx: RequestContext, status: int, latency: float) -> DecisionRecord:
        req, decision, outcome = ctx.req, ctx.decision, ctx.outcome
        record = DecisionRecord(
            request_id=ctx.request_id, ts=time.time(),
            router=decision.router if decision else None,
            requested_model=req.model if req else "",
            model=outcome.model.name if outcome else None,
            plan=decision.plan if decision else [], tried=ctx.tried, errors=ctx.errors,
            reason=outcome.reason if outcome else decision.reason if decision else "",
            status=status, error_kind=ctx.error_kind, stream=bool(req and req.stream),
            latency_ms=latency * 1000, api_key_id=ctx.key,
            conversation=req.prefs.conversation_id if req else None,
            prompt=req.text if req is not None and self.store_prompts else None)
        if outcome is not None:
            # A stream's overhead is what came before its first upstream byte; an answer's
            # is everything but the upstream calls (failed attempts included).
            record.overhead_ms = 1000 * (outcome.upstream_start - ctx.started if record.stream
                                         else latency - outcome.upstream_seconds)
            record.prompt_tokens = ctx.prompt_tokens
            record.completion_tokens = ctx.completion_tokens
            record.cost_usd, record.cost_source = ctx.cost_usd, ctx.cost_source
            record.upstream_id = ctx.upstream_id
        return record
