"""What one request carries through the gateway, from admission to its settling.

Each stage (parse, route, execute, answer or stream) fills in its part of a
:class:`RequestContext`; :meth:`switchman.gateway.record.settle.Settler.settle` reads the
whole of it once, however the request ended. The types here are plain data shared by every
layer, so they sit below all of them and import none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchman.config.budgets import BudgetConfig
from switchman.gateway.errors import GatewayError
from switchman.gateway.schema import ChatRequest
from switchman.ledger import Reservation
from switchman.pool import Model


class ConversationRef(Protocol):
    """Where a routed conversation is remembered once this turn's reply is known."""

    def after(self, reply: dict[str, Any]) -> str: ...


class AnswerListener(Protocol):
    """Hears that a routed request was answered (the online learner keeps its context)."""

    def answered(self, request_id: str, model: str, cost_usd: float) -> None: ...


@dataclass(slots=True)
class Decision:
    """Which models to try, in order, and why the first one."""

    router: str | None
    plan: list[str]
    reason: str
    reason_kind: str
    cost_weight: float | None
    estimated_cost: dict[str, float]
    #: Set for routed requests only: pinned ones neither read nor write stickiness.
    conversation: ConversationRef | None = None
    #: Set when the router learns online: told of the answer when the request settles.
    learning: AnswerListener | None = None


@dataclass(slots=True)
class Outcome:
    """The model that answered, its answer (or open stream), and what was tried before.

    ``release`` frees the model's in-flight slot; for a stream, whoever finishes relaying
    it must call it (exactly once), since the call lasts as long as the stream.
    """

    model: Model
    reason: str
    tried: list[str]
    errors: list[str]
    upstream_start: float
    upstream_seconds: float
    response: dict[str, Any] | None = None
    first_chunk: dict[str, Any] | None = None
    chunks: AsyncIterator[dict[str, Any]] | None = None
    release: Callable[[], None] | None = None


@dataclass(slots=True)
class RequestContext:
    """One request: who sent what, what was decided and tried, what it cost, how it ended."""

    request_id: str
    started: float  # time.perf_counter() at admission
    key: str | None = None  # the caller's API key id
    req: ChatRequest | None = None
    #: The router the request named, known before its decision exists (metric label).
    router: str | None = None
    decision: Decision | None = None
    outcome: Outcome | None = None
    tried: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_kind: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_source: str = "none"
    upstream_id: str | None = None
    reply: dict[str, Any] | None = None  # the assistant message, for stickiness
    #: Whether the decision log gets a row (not for callers that failed authentication).
    logged: bool = True
    release_slot: Callable[[], None] | None = None  # frees the gateway's in-flight slot
    #: Budgets the request counts against; what its answering call holds against them; and
    #: the budgets to charge without a hold (an exhausted budget's ``cheapest`` answer).
    budgets: list[BudgetConfig] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    charge_budgets: list[BudgetConfig] = field(default_factory=list)
    settled: bool = False

    def failed(self, err: GatewayError) -> None:
        """Take what an error knows (its kind, the models it tried, their errors)."""
        self.error_kind, self.tried, self.errors = err.kind, err.tried, err.errors
        self.logged = err.status != 401

    def answered_by(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.tried, self.errors = outcome.tried, list(outcome.errors)

    def free_slot(self) -> None:
        """Release the gateway slot now (idempotent)."""
        release, self.release_slot = self.release_slot, None
        if release is not None:
            release()
