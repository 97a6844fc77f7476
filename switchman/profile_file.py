"""One added model's profile as a file of its own, for the serving configuration.

``switchman profile add`` writes one next to the router it extends
(``profiles/<model>.json``), or alone (``--out FILE.json``), and a router in the serving
configuration takes pool models in from such files (``routers[].profiles``) without a
router directory per pool. A profile is only meaningful against the router it was made
with (its coefficients are over that router's trained models, its residuals over that
router's tasks), so the file names that router by the fingerprint of its trained part
(``router.id``), and a router refuses a file made against another.

The file is JSON (no pickled code, readable with any tool): the model, where its outcomes
came from, the base router's id and trained models, and the profile's and its cost
column's arrays, each as dtype, shape and values (float64 text round-trips float32 and
float64 values exactly).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The format version of a profile file; readers refuse any other.
PROFILE_FORMAT = 1
#: The key that marks a JSON file as a switchman profile (its value: the format version).
_MARK = "switchman_profile"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ProfileFileError(ValueError):
    """A profile file that cannot be read: the message starts with its path."""


@dataclass(frozen=True)
class ProfileFile:
    """One model's profile, as written to and read from a file."""

    model: str
    source: str  # the outcomes file the profile was estimated from
    router_id: str  # the fingerprint of the trained part of the router it was made with
    trained_models: tuple[str, ...]  # that router's trained models (for messages)
    arrays: Mapping[str, np.ndarray]  # "profile.*" (the Profile) and "cost.*" (its costs)

    @property
    def n_prompts(self) -> int:
        return int(self.arrays["profile.n_prompts"])


def profile_file_name(model: str) -> str:
    """``<model>.json`` with every character a file name may not safely hold replaced
    (``meta/llama-3`` -> ``meta_llama-3.json``); the file itself keeps the exact name."""
    return _UNSAFE.sub("_", model) + ".json"


def write_profile_file(path: str | Path, profile: ProfileFile) -> Path:
    path = Path(path)
    document = {
        _MARK: PROFILE_FORMAT,
        "model": profile.model,
        "source": profile.source,
        "n_prompts": profile.n_prompts,
        "router": {"id": profile.router_id, "trained_models": list(profile.trained_models)},
        "arrays": {
            key: {
                "dtype": np.asarray(a).dtype.str,
                "shape": list(np.shape(a)),
                "values": np.asarray(a, dtype=np.float64).ravel().tolist(),
            }
            for key, a in profile.arrays.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document) + "\n")
    return path


def read_profile_file(path: str | Path) -> ProfileFile:
    """The profile in ``path``; raises :class:`ProfileFileError` saying what is wrong."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ProfileFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileFileError(f"{path}: not a profile file (not JSON: {exc})") from None
    if not isinstance(document, dict) or _MARK not in document:
        raise ProfileFileError(
            f"{path}: not a profile file (write one with `switchman profile add`)"
        )
    if document[_MARK] != PROFILE_FORMAT:
        raise ProfileFileError(
            f"{path}: profile format {document[_MARK]!r} is not supported "
            f"by this switchman (reads {PROFILE_FORMAT}); write it anew "
            "with `switchman profile add`"
        )
    try:
        arrays = {
            key: np.asarray(spec["values"], dtype=np.float64)
            .astype(np.dtype(spec["dtype"]))
            .reshape(spec["shape"])
            for key, spec in document["arrays"].items()
        }
        profile = ProfileFile(
            str(document["model"]),
            str(document["source"]),
            str(document["router"]["id"]),
            tuple(map(str, document["router"]["trained_models"])),
            arrays,
        )
        for key in (
            "profile.n_prompts",
            "profile.weights",
            "profile.offsets",
            "cost.price_per_token",
            "cost.output_coef",
        ):
            if key not in arrays:
                raise KeyError(key)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProfileFileError(
            f"{path}: the profile file is incomplete or damaged "
            f"({type(exc).__name__}: {exc}); write it anew with "
            "`switchman profile add`"
        ) from None
    return profile


__all__ = [
    "PROFILE_FORMAT",
    "ProfileFile",
    "ProfileFileError",
    "profile_file_name",
    "read_profile_file",
    "write_profile_file",
]
