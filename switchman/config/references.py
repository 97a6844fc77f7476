"""Checks across sections: names that must refer to pool models, duplicates, shared ports.

They read the parsed file itself, not the validated configuration, so they run even when
some field of the file is invalid: every problem of a file is reported in one pass (a
mistyped pool name in a router is reported together with a bad price elsewhere, not after
it is fixed). Entries of the wrong shape are skipped here; field validation reports them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from switchman.config.fields import PROVIDERS, did_you_mean

#: Hosts on which a gateway listening on ``server.port`` also takes 127.0.0.1's port.
_LOOPBACK_OR_ANY = {"127.0.0.1", "localhost", "0.0.0.0", "::", ""}


def _entries(value: Any) -> Iterator[tuple[int, Mapping[str, Any]]]:
    if isinstance(value, list):
        for i, entry in enumerate(value):
            if isinstance(entry, Mapping):
                yield i, entry


def _names(value: Any) -> Iterator[tuple[int, str]]:
    if isinstance(value, list):
        for i, name in enumerate(value):
            if isinstance(name, str):
                yield i, name


def _port(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def pool_names(data: Mapping[str, Any]) -> list[str]:
    """The pool's model names, in order, each once (entries without a name skipped)."""
    names = [m["name"] for _, m in _entries(data.get("models")) if isinstance(m.get("name"), str)]
    return list(dict.fromkeys(names))


class _Checker:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.pool = pool_names(data)
        self.problems: list[str] = []

    def not_in_pool(self, where: str, name: str, what: str = "a pool model",
                    itself: str | None = None) -> None:
        choices = [n for n in self.pool if n not in (name, itself)]
        self.problems.append(f"{where}: {name!r} is not {what}{did_you_mean(name, choices)}")

    def models(self, local_names: set[str]) -> None:
        seen: set[str] = set()
        for i, model in _entries(self.data.get("models")):
            name = model.get("name")
            if isinstance(name, str):
                if name in seen:
                    self.problems.append(f"models[{i}].name: {name!r} appears twice in the pool")
                seen.add(name)
            for j, other in _names(model.get("fallbacks")):
                if other not in self.pool or other == name:
                    self.not_in_pool(f"models[{i}].fallbacks[{j}]", other, "another pool model",
                                     itself=name if isinstance(name, str) else None)
            if model.get("endpoint") is None and model.get("provider", "openai") == "openai" \
                    and name not in local_names:
                self.problems.append(f"models[{i}].endpoint: required for an 'openai' model "
                                     "that is not served by a local: entry")

    def routers(self) -> None:
        seen: set[str] = set()
        for i, router in _entries(self.data.get("routers")):
            name = router.get("name")
            if isinstance(name, str):
                if name in self.pool:
                    self.problems.append(f"routers[{i}].name: {name!r} is also a model name")
                elif name in seen:
                    self.problems.append(f"routers[{i}].name: {name!r} appears twice")
                seen.add(name)
            for j, member in _names(router.get("models")):
                if member not in self.pool:
                    self.not_in_pool(f"routers[{i}].models[{j}]", member)
            model_map = router.get("model_map")
            if isinstance(model_map, Mapping):
                for key, target in model_map.items():
                    if isinstance(target, str) and target not in self.pool:
                        self.not_in_pool(f"routers[{i}].model_map.{key}", target)
            for j, member in _names(router.get("fallbacks")):
                if member not in self.pool:
                    self.not_in_pool(f"routers[{i}].fallbacks[{j}]", member)

    def providers(self) -> None:
        reliability = self.data.get("reliability")
        providers = reliability.get("providers") if isinstance(reliability, Mapping) else None
        if isinstance(providers, Mapping):
            for key in providers:
                if key not in PROVIDERS:
                    self.problems.append(f"reliability.providers.{key}: use 'openai' or "
                                         f"'anthropic'{did_you_mean(str(key), PROVIDERS)}")

    def local(self) -> set[str]:
        """Checks ``local:`` and returns the names it serves."""
        kinds = {m["name"]: m.get("provider", "openai")
                 for _, m in _entries(self.data.get("models")) if isinstance(m.get("name"), str)}
        server = self.data.get("server")
        server = server if isinstance(server, Mapping) else {}
        server_port = _port(server.get("port", 8000))
        server_host = server.get("host", "127.0.0.1")
        served: set[str] = set()
        ports: dict[int, int] = {}
        for i, local in _entries(self.data.get("local")):
            name = local.get("name")
            if isinstance(name, str):
                if name not in self.pool:
                    self.not_in_pool(f"local[{i}].name", name)
                elif name in served:
                    self.problems.append(f"local[{i}].name: {name!r} appears twice")
                elif kinds.get(name) == "anthropic":
                    self.problems.append(
                        f"local[{i}].name: {name!r} is an 'anthropic' model; a llama.cpp "
                        "server speaks the OpenAI API (give it provider: openai)")
                served.add(name)
            port = _port(local.get("port"))
            if port is None:
                continue
            if port in ports:
                self.problems.append(f"local[{i}].port: {port} is also the port of "
                                     f"local[{ports[port]}]")
            elif port == server_port and str(server_host) in _LOOPBACK_OR_ANY:
                self.problems.append(f"local[{i}].port: {port} is also server.port")
            ports.setdefault(port, i)
        return served


def reference_problems(data: Mapping[str, Any]) -> list[str]:
    """Every cross-section problem of a parsed (and interpolated) configuration file."""
    checker = _Checker(data)
    served = checker.local()
    checker.models(served)
    checker.routers()
    checker.providers()
    return checker.problems
