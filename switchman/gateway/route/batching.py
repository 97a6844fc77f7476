"""One scoring call for the routed requests that reach the router in the same loop turn.

Under load, many requests become ready in one turn of the event loop, and each used to be
scored alone. Much of a trained router's cost per call is fixed: a few dozen small numpy
calls, whatever the number of prompts. Scoring the k prompts of a turn in one call makes
those calls once, so it costs less than k calls (``benchmarks/routing_speed.py`` prints the
per-prompt cost by batch size). The similarity product to the training embeddings is not
among the savings: it is bound by arithmetic, and 4 rows cost 4 times one row. A request
waits for its batch at most one loop turn, which it would have spent queued behind the
others anyway; alone, it is scored at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import numpy as np

from switchman.estimates import Estimates

#: What a router's scoring returns for a list of prompts: their estimates and, for a router
#: that learns online, their embeddings (None otherwise).
Scored = tuple[Estimates, "np.ndarray | None"]

#: Prompts scored in one call at most, so that one call never holds the event loop for long.
MAX_BATCH = 32


class EstimateBatcher:
    """Collects the prompts of one loop turn and scores them in one call of ``score``.

    Scoring runs on the event loop, as one prompt's would: a batch of 8 short prompts costs
    about as much as four alone, and ``MAX_BATCH`` bounds how long one call holds the loop.
    If a batch's call fails, each prompt of it is scored again alone, so that a prompt that
    cannot be scored fails only its own request.
    """

    def __init__(self, score: Callable[[Sequence[str]], Scored],
                 max_batch: int = MAX_BATCH) -> None:
        self._score = score
        self._max_batch = max_batch
        self._waiting: list[tuple[str, asyncio.Future[Scored]]] = []

    async def estimate(self, text: str) -> Scored:
        """``text``'s estimates (one row) and embedding, scored with this turn's others."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scored] = loop.create_future()
        self._waiting.append((text, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        waiting = [(text, f) for text, f in self._waiting if not f.done()]  # not cancelled
        self._waiting = []
        for start in range(0, len(waiting), self._max_batch):
            self._answer(waiting[start:start + self._max_batch])

    def _answer(self, batch: list[tuple[str, asyncio.Future[Scored]]]) -> None:
        if not batch:
            return
        try:
            est, embeddings = self._score([text for text, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
            else:
                for one in batch:
                    self._answer([one])
            return
        for i, (_, future) in enumerate(batch):
            row = slice(i, i + 1)
            future.set_result((est.rows(row), None if embeddings is None else embeddings[row]))

