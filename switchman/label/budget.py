"""The ``--max-usd`` rule: a call starts only if its worst case still fits the cap.

Each call holds its worst-case cost while it runs and is charged what it really cost when
it ends, so spend never passes the cap whatever the concurrency. A call that does not fit
waits while other calls hold money (they usually cost less than their worst case and give
the rest back); one that would not fit even if they gave it all back is not started.
"""

from __future__ import annotations

import asyncio


class SpendCap:
    """Dollars spent and held by one labelling run against an optional limit."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.spent = 0.0
        self.held = 0.0
        self._changed = asyncio.Condition()

    async def hold(self, amount: float) -> bool:
        """Reserve ``amount`` for a call about to start; False: it must not start."""
        async with self._changed:
            while self.limit is not None and self.spent + self.held + amount > self.limit:
                if self.spent + amount > self.limit:  # would not fit with every hold back
                    return False
                await self._changed.wait()
            self.held += amount
            return True

    async def settle(self, held: float, cost: float) -> None:
        """A call that held ``held`` ended having cost ``cost`` (0 for one that failed
        before the upstream billed anything)."""
        async with self._changed:
            self.held = max(0.0, self.held - held)
            self.spent += cost
            self._changed.notify_all()
