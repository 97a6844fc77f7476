"""The routing hot path's compiled loops (``switchman/_hotpath.c``), or None where the
extension was not built (an install without a C compiler): callers then take their
pure-Python path, which gives the same values more slowly."""

from __future__ import annotations

from types import ModuleType

compiled: ModuleType | None
try:
    from switchman import _hotpath as compiled
except ImportError:
    compiled = None
