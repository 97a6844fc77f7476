"""Configuration of spend limits (``budgets:``) and of where shared state lives (``state:``).

A budget caps what a set of callers (API keys), a set of routers, or the whole gateway may
spend in a period; the ledger (:mod:`switchman.ledger`) enforces it before each call.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetConfig(_Section):
    """One spend limit."""

    name: str = Field(min_length=1, description="Shown in errors, metrics and `spend`.")
    usd: float = Field(gt=0, description="Dollars the period may spend.")
    period: Literal["hour", "day", "month", "total"] = Field(
        "day", description="When the budget starts again (UTC); total = never.")
    api_keys: list[str] = Field(
        default_factory=list, description="Callers it covers; with routers empty and this "
        "empty, the whole gateway.")
    routers: list[str] = Field(default_factory=list, description="Routers it covers.")
    on_exhausted: Literal["reject", "cheapest"] = Field(
        "reject", description="When it is spent: 429 budget_exceeded, or the cheapest "
        "eligible model answers anyway.")

    @model_validator(mode="after")
    def _one_scope(self) -> BudgetConfig:
        if self.api_keys and self.routers:
            raise ValueError("give api_keys or routers, not both (two budgets do both)")
        return self


class StateConfig(_Section):
    """Where breakers, stickiness, budgets and the learner keep state shared by replicas."""

    url: str | None = Field(
        None, description="redis://host:port/db for several replicas; null = in process.")
    prefix: str = Field("switchman", min_length=1,
                        description="Key prefix: gateways with the same prefix share state.")
    timeout_s: float = Field(0.25, gt=0, description="Per call to the shared store.")
    fail_closed: bool = Field(
        True, description="With the shared store unreachable, refuse calls a budget covers "
        "(true) or let them through unmetered (false). Stickiness and learning fall back to "
        "local state either way.")
