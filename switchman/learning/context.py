"""What the online learner sees of one request: a small prompt vector and the router's estimates.

The learner corrects the offline router, so its context is what the router already computed
for the request, never anything new: the prompt's embedding, projected to a few dimensions by
a fixed random sign matrix (Johnson-Lindenstrauss: distances are roughly kept, and a
16-dimensional ridge regression costs microseconds where the 384-dimensional one would not),
plus the router's expected quality and cost of every model. A :class:`Context` is plain
data, so a caller that gets feedback long after the decision can keep it (or its
``to_state()``) with the decision and hand it back to ``OnlineLearner.update``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from switchman.learning.packing import pack_flat, unpack, unpack_flat


@dataclass(frozen=True)
class Context:
    """One request as the learner sees it.

    ``prompt`` is the projected embedding (k,); ``quality`` and ``cost`` are the offline
    router's per-model estimates, in the order of ``models``.
    """

    models: tuple[str, ...]
    prompt: np.ndarray
    quality: np.ndarray
    cost: np.ndarray

    def to_state(self) -> list[Any]:
        """JSON-like data to keep with a decision until its feedback: ``[models, arrays]``,
        the arrays (prompt, quality, cost) as one base64 string of their float64 bytes. A
        gateway keeps 100,000 of these in memory: as a dict of three packed arrays one
        took ~2.0 kB in the store (its key included; 11 models, tracemalloc), this ~0.8 kB
        (``models`` is the router's own tuple, shared by every context, not a copy)."""
        return [self.models, pack_flat(np.concatenate([self.prompt, self.quality, self.cost]))]

    @classmethod
    def from_state(cls, state: list[Any] | dict[str, Any]) -> Context:
        """A context from ``to_state``'s data, or from the dict an earlier version kept."""
        if isinstance(state, dict):
            return cls(tuple(state["models"]), unpack(state["prompt"], "prompt"),
                       unpack(state["quality"], "quality"), unpack(state["cost"], "cost"))
        models, packed = state
        values = unpack_flat(packed, "context")
        k = len(models)
        if values.size < 2 * k:
            raise ValueError(f"learner context holds {values.size} values for {k} models")
        dim = values.size - 2 * k
        return cls(tuple(models), values[:dim], values[dim:dim + k], values[dim + k:])


class PromptProjection:
    """A fixed random projection of L2-normalised embeddings to ``dim`` values.

    Entries are +-1/sqrt(dim) (Achlioptas' database-friendly Johnson-Lindenstrauss matrix),
    their signs drawn by a splitmix64 hash of (seed, row, column) in integer arithmetic: the
    same on every machine and NumPy version (NumPy does not promise its random streams
    stay the same), so replicas and restarts project identically, and the state is three
    numbers instead of a 384 x 16 matrix.
    """

    def __init__(self, input_dim: int, dim: int, seed: int = 0) -> None:
        if input_dim < 1 or dim < 0:
            raise ValueError(f"a projection needs input_dim >= 1 and dim >= 0, got "
                             f"{input_dim}, {dim}")
        self.input_dim, self.dim, self.seed = int(input_dim), int(dim), int(seed)
        index = np.arange(input_dim * dim, dtype=np.uint64)
        # the seed's offset in Python integers: numpy warns on a wrapping scalar product
        offset = np.uint64((seed % 2**32) * 0x9E3779B97F4A7C15 % 2**64)
        signs = (_splitmix64(index + offset) >> np.uint64(63)).astype(np.float64)
        scale = 1.0 / np.sqrt(dim) if dim else 1.0
        self.matrix = ((1.0 - 2.0 * signs) * scale).reshape(input_dim, dim)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(dim,) for one embedding, (n, dim) for a batch."""
        return np.asarray(embeddings, dtype=np.float64) @ self.matrix

    def to_state(self) -> dict[str, int]:
        return {"input_dim": self.input_dim, "dim": self.dim, "seed": self.seed}

    @classmethod
    def from_state(cls, state: dict[str, int]) -> PromptProjection:
        return cls(int(state["input_dim"]), int(state["dim"]), int(state["seed"]))


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 values (wrapping arithmetic, as specified)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
