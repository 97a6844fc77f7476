"""Arrays inside the learner's JSON-like state, packed as base64 of their float64 bytes.

Why not lists of floats: a gateway writes its learner's state to the shared store every
publish interval (0.1 s under load) and every other replica reads it, both on the event
loop. For a 28-model pool the state is ~10,000 floats; as lists, ``to_state`` plus
``json.dumps`` took ~6 ms and loading ~10 ms, as bytes both take well under a millisecond.
The values round-trip exactly (they are the array's own bytes, little-endian). Lists are
still read, so a state saved before packing (learner state version 1) loads.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

_DTYPE = np.dtype("<f8")


def pack(array: np.ndarray) -> dict[str, Any]:
    """``array`` as JSON-compatible data: its shape and its float64 bytes in base64."""
    values = np.ascontiguousarray(array, dtype=_DTYPE)
    return {"shape": list(values.shape),
            "base64": base64.b64encode(values.tobytes()).decode("ascii")}


def unpack(value: Any, what: str) -> np.ndarray:
    """The float64 array ``pack`` made, or one from (nested) lists of numbers.

    ``what`` names the array in the ValueError raised for data that are neither.
    """
    if isinstance(value, dict):
        try:
            raw = base64.b64decode(value["base64"], validate=True)
            shape = tuple(int(n) for n in value["shape"])
            return np.frombuffer(raw, dtype=_DTYPE).reshape(shape).astype(np.float64)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"learner state {what!r} is not a packed array ({exc})") from None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"learner state {what!r} is not an array of numbers ({exc})") from None


def pack_flat(values: np.ndarray) -> str:
    """A 1-d array as the base64 string of its float64 bytes alone: for data kept by the
    hundred thousand (a gateway's learning contexts), where ``pack``'s dict and shape list
    cost more memory than the numbers."""
    return base64.b64encode(np.ascontiguousarray(values, dtype=_DTYPE).tobytes()).decode("ascii")


def unpack_flat(text: Any, what: str) -> np.ndarray:
    """The float64 array ``pack_flat`` made; a ValueError naming ``what`` otherwise."""
    try:
        return np.frombuffer(base64.b64decode(text, validate=True), dtype=_DTYPE).astype(
            np.float64)
    except (TypeError, ValueError, binascii.Error) as exc:
        raise ValueError(f"learner state {what!r} is not packed values ({exc})") from None
