"""Progress bars for the long stages of a command: embedding, each fit, the sweep.

One mechanism for every stage: a tqdm bar on stderr. A stage shows a bar only when the
command asked for progress (the CLI runs its commands inside ``showing()``; a caller may
also ask one stage directly) and stderr is a terminal, so pipes, logs and tests get no bar
to erase, and the gateway's and the benchmarks' library calls stay silent unless they ask.
The switch is a context variable rather than an argument: estimators keep scikit-learn's
``fit(X, y)`` signature and still report their folds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_SHOWING: ContextVar[bool] = ContextVar("switchman_progress", default=False)


class _Silent:
    """Stands in for a tqdm bar where none is shown."""

    def update(self, n: int = 1) -> None:
        """Nothing to show."""

    def set_postfix_str(self, text: str) -> None:
        """Nothing to show."""


@contextlib.contextmanager
def showing(enabled: bool = True) -> Iterator[None]:
    """Stages started inside show their bars (on a terminal) when ``enabled``."""
    token = _SHOWING.set(enabled)
    try:
        yield
    finally:
        _SHOWING.reset(token)


def stage(
    desc: str, total: int, unit: str = "step", show: bool | None = None
) -> contextlib.AbstractContextManager[Any]:
    """A bar over ``total`` steps of stage ``desc``, or a silent stand-in.

    ``show`` None follows the enclosing ``showing()``; True or False decide for this stage.
    Either way the bar is drawn only on a terminal (tqdm's ``disable=None``).
    """
    if not (_SHOWING.get() if show is None else show):
        return contextlib.nullcontext(_Silent())
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None)
