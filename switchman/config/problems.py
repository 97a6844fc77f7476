"""Pydantic's validation errors as the lines an operator reads: ``key.path: what is wrong``.

Pydantic already reports every field error of a file at once; this module only renders
them: a key path like ``models[2].input_per_mtok``, a "did you mean" for an unknown key
(the keys valid at that place are read off the models, so a suggestion never names a key
that would be refused too), the replacement of a removed key, and one order for all
problems (section by section, entry by entry), whichever check found them.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from switchman.config.fields import did_you_mean
from switchman.config.serving import REMOVED_SERVER_KEYS

_SECTION = re.compile(r"([^.\[]+)(?:\[(\d+)\])?")


def key_path(loc: Sequence[int | str]) -> str:
    """``("models", 2, "name")`` -> ``models[2].name``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _without_none(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        arms = [arm for arm in get_args(tp) if arm is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return tp


def _step(tp: Any, part: int | str) -> Any:
    """The type found at ``part`` inside ``tp`` (a model field, a list item, a dict value)."""
    tp = _without_none(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else field.annotation
    args = get_args(tp)
    if get_origin(tp) is list and isinstance(part, int) and args:
        return args[0]
    if get_origin(tp) is dict and isinstance(part, str) and len(args) == 2:
        return args[1]
    return None


def keys_at(root: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys a mapping at ``loc`` may have (``[]`` when ``loc`` is not a section)."""
    tp: Any = root
    for part in loc:
        tp = _step(tp, part)
        if tp is None:
            return []
    tp = _without_none(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _message(err: Any, root: type[BaseModel]) -> str:
    loc = err["loc"]
    if err["type"] == "extra_forbidden":
        if len(loc) == 2 and loc[0] == "server" and loc[1] in REMOVED_SERVER_KEYS:
            return (f"no longer supported (nothing read it); use "
                    f"{REMOVED_SERVER_KEYS[loc[1]]} instead")
        return f"{err['msg']}{did_you_mean(str(loc[-1]), keys_at(root, loc[:-1]))}"
    return str(err["msg"]).removeprefix("Value error, ")


def format_errors(exc: ValidationError, root: type[BaseModel],
                  skip: Iterable[str] = ()) -> list[str]:
    """One line per error; errors under a path in ``skip`` (already reported) are left out."""
    skipped = tuple(skip)
    problems = []
    for err in exc.errors():
        path = key_path(err["loc"])
        if any(path == s or path.startswith((f"{s}.", f"{s}[")) for s in skipped):
            continue
        msg = _message(err, root)
        # A model-level check may name the exact key itself (``reliability.timeouts.x: ...``).
        if not path or msg.startswith((f"{path}.", f"{path}[")):
            problems.append(msg)
        else:
            problems.append(f"{path}: {msg}")
    return problems


def in_section_order(problems: Iterable[str], sections: Sequence[str]) -> list[str]:
    """Problems, each once, sorted by top-level section (in ``sections``' order; unknown
    ones last) and entry, stable otherwise.

    Checks find problems in different passes (fields, references, the machine); sorting
    puts each entry's problems together whichever pass found them.
    """
    order = {key: i for i, key in enumerate(sections)}

    def position(problem: str) -> tuple[int, int]:
        match = _SECTION.match(problem)
        if match is None:
            return (len(order), 0)
        return (order.get(match.group(1), len(order)),
                int(match.group(2)) if match.group(2) else -1)

    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=position)
