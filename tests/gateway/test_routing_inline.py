"""Where a trained router's estimate runs: on the event loop for usual prompts, in a thread
for very long ones (tokenising grows with length; the loop must not stall)."""

from __future__ import annotations

from switchman.gateway.route.routing import INLINE_MAX_CHARS, RouterEntry, estimate_inline


class _Scorer:  # only the entry's flags matter here; estimate_inline never calls it
    models: tuple[str, ...] = ()


def test_prior_routers_always_run_inline() -> None:
    entry = RouterEntry("switchman/auto", _Scorer(), 0.0, inline=True)
    assert estimate_inline(entry, "x" * (10 * INLINE_MAX_CHARS))


def test_trained_routers_run_inline_up_to_the_size_limit() -> None:
    entry = RouterEntry("switchman/learned", _Scorer(), 0.0, inline=False)
    assert estimate_inline(entry, "")
    assert estimate_inline(entry, "x" * INLINE_MAX_CHARS)
    assert not estimate_inline(entry, "x" * (INLINE_MAX_CHARS + 1))
