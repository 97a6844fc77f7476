"""Calling named pool models exactly as the gateway would, outside a running gateway.

``switchman label`` must measure the models the gateway serves, so it calls them through
the gateway's own machinery: the providers (``build_providers``), each model's guard
(timeouts, retries with backoff, circuit breaker, in-flight limit) and the executor's
plan walk with a one-model plan, so a failing model is reported rather than replaced by a
fallback. The ``local:`` llama.cpp models among the named ones are started for the run
and stopped after it, as ``serve`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from switchman.config import Config, PoolModel
from switchman.gateway.context import Decision, RequestContext
from switchman.gateway.errors import GatewayError
from switchman.gateway.execute.budget_gate import worst_case_cost
from switchman.gateway.execute.executor import Executor
from switchman.gateway.execute.guards import build_guards
from switchman.gateway.execute.local import LocalModelServer
from switchman.gateway.execute.providers.registry import build_providers
from switchman.gateway.execute.providers.transport import Transport
from switchman.gateway.record.accounting import cost_of, usage_of
from switchman.gateway.record.metrics import GatewayMetrics
from switchman.gateway.schema import ChatRequest, parse_chat_request
from switchman.state import LocalStore

#: ``cost_source`` of the outcomes table for usage the upstream reported / text estimated.
_COST_SOURCE = {"usage": "measured", "estimate": "estimated"}


@dataclass(frozen=True, slots=True)
class Answer:
    """One model's answer to one message, with what it took."""

    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_source: str
    latency_s: float


class CallFailed(Exception):
    """A call that produced no answer; ``reason`` says why (every attempt's error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PoolCalls:
    """The named pool models, callable one message at a time (``async with`` to use)."""

    def __init__(
        self, config: Config, names: Iterable[str], max_tokens: int, temperature: float | None
    ) -> None:
        self.config = config
        wanted = set(names)
        self.models: dict[str, PoolModel] = {m.name: m for m in config.models if m.name in wanted}
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._transport = Transport()
        self._servers: list[LocalModelServer] = []
        self._executor: Executor | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> PoolCalls:
        try:
            await asyncio.to_thread(self._start_local_models)
            await self._transport.start()
        except BaseException:
            await self.close()
            raise
        guards = build_guards(self.config, self.models.values(), LocalStore())
        providers = build_providers(
            self._transport,
            self.models.values(),
            {name: guard.timeouts for name, guard in guards.items()},
        )
        self._executor = Executor(self.models, providers, GatewayMetrics(), guards)
        # Waiting for a model's in-flight slot here, instead of being refused by the
        # executor as an overloaded gateway would, keeps its limit without failing pairs.
        self._slots = {
            name: asyncio.Semaphore(guard.in_flight.limit) for name, guard in guards.items()
        }
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _start_local_models(self) -> None:
        """Start the llama.cpp processes of the named local models (blocks until ready)."""
        for local in self.config.local:
            if local.name not in self.models:
                continue
            server = LocalModelServer(local)
            self._servers.append(server)
            endpoint = server.start()
            self.models[local.name] = self.models[local.name].model_copy(
                update={"endpoint": endpoint}
            )

    async def close(self) -> None:
        await self._transport.close()
        for server in self._servers:
            await asyncio.to_thread(server.stop)
        self._servers.clear()

    def request(self, content: str, json_reply: bool = False) -> ChatRequest:
        """The chat request that sends ``content`` as one user message; ``json_reply``
        asks for a JSON object (``response_format: json_object``)."""
        body: dict[str, Any] = {
            "model": "label",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if json_reply:
            body["response_format"] = {"type": "json_object"}
        try:
            return parse_chat_request(body, {}, frozenset())
        except GatewayError as err:  # a prompt the gateway itself would refuse
            raise CallFailed(f"invalid request: {err.message}") from None

    def worst_case_usd(self, model: str, req: ChatRequest) -> float:
        """The most ``req`` can cost at ``model``'s configured prices (the budget gate's
        rule: twice the prompt's estimated tokens plus ``max_tokens``)."""
        return worst_case_cost(self.models[model], req)

    async def ask(self, model: str, req: ChatRequest) -> Answer:
        """``model``'s answer to ``req``; raises :class:`CallFailed` with the reason."""
        assert self._executor is not None, "PoolCalls used outside 'async with'"
        pool_model = self.models[model]
        ctx = RequestContext(
            request_id=f"label-{model}",
            started=time.perf_counter(),
            req=req,
            decision=Decision(None, [model], "labelling", "pinned", None, {}),
        )
        async with self._slots[model]:
            try:
                outcome = await self._executor.run(ctx)
            except GatewayError as err:
                raise CallFailed("; ".join(err.errors) or err.message) from None
        response: dict[str, Any] = outcome.response or {}
        text = _content(response)
        if text is None:
            raise CallFailed(f"{model}: the answer has no message content")
        usage = usage_of(response.get("usage"), req.prompt_tokens, len(text))
        return Answer(
            text,
            usage.prompt_tokens,
            usage.completion_tokens,
            cost_of(pool_model, usage),
            _COST_SOURCE[usage.source],
            outcome.upstream_seconds,
        )


def _content(response: dict[str, Any]) -> str | None:
    """The text of the first choice's message, if it has one."""
    with contextlib.suppress(AttributeError, IndexError, KeyError, TypeError):
        content = response["choices"][0]["message"]["content"]
        if isinstance(content, str):
            return content
    return None
