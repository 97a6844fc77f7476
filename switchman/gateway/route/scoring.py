"""What a router name scores with: a trained router, or the pool's declared priors.

The gateway depends only on the small :class:`Scorer` protocol, so a router trained with
``switchman train`` (``switchman.router.Router``) and the prior-based fallback plug in the same
way, and a future estimator needs no gateway change (DESIGN: estimator and policy apart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from switchman.config import Config, ConfigError, RouterConfig
from switchman.config.fields import did_you_mean
from switchman.estimates import Estimates
from switchman.gateway.schema import CHARS_PER_TOKEN
from switchman.pool import Model

#: Prior quality of a model the configuration gives none: middling, so it is neither
#: always picked nor never picked, and `config check` warns about it.
NEUTRAL_PRIOR = 0.5


@runtime_checkable
class Scorer(Protocol):
    """Per-prompt expected quality and cost for a fixed list of pool models."""

    models: tuple[str, ...]
    default_cost_weight: float

    def estimate(self, prompts: Sequence[str]) -> Estimates: ...


class TrainedScorer(Scorer, Protocol):
    """A trained router: its estimates can also be had from features made once."""

    def features(self, prompts: Sequence[str]) -> Any: ...

    def estimate_features(self, features: Any) -> Estimates: ...


class PriorScorer:
    """Quality = each model's configured ``quality_prior``; cost = its prices x tokens.

    Input tokens are estimated from the prompt's length and output tokens from the model's
    ``typical_output_tokens``: the same figures for every prompt of a given length, which is
    all a configuration can say before any outcome data exists.
    """

    def __init__(self, models: Sequence[Model], default_cost_weight: float) -> None:
        self.models = tuple(m.name for m in models)
        self.default_cost_weight = float(default_cost_weight)
        self._quality = np.array(
            [[NEUTRAL_PRIOR if m.quality_prior is None else m.quality_prior for m in models]])
        self._in_price = np.array([m.input_per_mtok / 1e6 for m in models])
        self._out_cost = np.array(
            [m.output_per_mtok * m.typical_output_tokens / 1e6 for m in models])

    def estimate_embedded(self, prompts: Sequence[str]) -> tuple[Estimates, np.ndarray]:
        """Estimates, and an empty prompt representation: priors see no text."""
        return self.estimate(prompts), np.zeros((len(prompts), 1))

    def estimate(self, prompts: Sequence[str]) -> Estimates:
        tokens = np.array([[len(p) / CHARS_PER_TOKEN] for p in prompts])
        cost = tokens * self._in_price[None, :] + self._out_cost[None, :]
        quality = np.repeat(self._quality, len(prompts), axis=0)
        return Estimates(self.models, quality, cost)


class MappedScorer:
    """A trained router seen through pool names; models the pool lacks are dropped."""

    def __init__(self, inner: TrainedScorer, model_map: Mapping[str, str],
                 pool_names: Sequence[str]) -> None:
        pool = set(pool_names)
        self._inner = inner
        self._keep: list[str] = []
        names: list[str] = []
        for name in inner.models:
            target = model_map.get(name, name)
            if target in pool and target not in names:
                self._keep.append(name)
                names.append(target)
        self.models = tuple(names)
        self.unknown_to_pool = tuple(n for n in inner.models if n not in self._keep)
        self.default_cost_weight = float(inner.default_cost_weight)

    def estimate(self, prompts: Sequence[str]) -> Estimates:
        return self._mapped(self._inner.estimate(prompts))

    def _mapped(self, est: Estimates) -> Estimates:
        est = est.select_models(self._keep)
        return Estimates(self.models, est.quality, est.cost, est.quality_std)

    def estimate_embedded(self, prompts: Sequence[str]) -> tuple[Estimates, np.ndarray]:
        """Estimates and the prompts' embeddings (what an online learner sees of them)."""
        features = self._inner.features(prompts)
        return self._mapped(self._inner.estimate_features(features)), features.embeddings


def load_trained(router: RouterConfig, pool: Sequence[str], where: str,
                 prices: Mapping[str, tuple[float, float]] | None = None) -> MappedScorer:
    """The trained router at ``router.path`` seen through ``pool`` names.

    ``prices`` (pool name -> USD per Mtok in, out) are the pool's configured prices: the
    router decides on them, not on the prices of its training table (its cost model
    predicts tokens; dollars follow from the price list in force).

    Raises :class:`ConfigError` naming every problem under ``where`` (``routers[0]``): no
    directory there, a router that does not load, ``model_map`` keys the router does not
    have (a typo there would silently leave a model unmapped), no model in the pool.
    """
    path = router.path
    assert path is not None
    if not Path(path).is_dir():
        raise ConfigError([f"{where}.path: no router directory at {path} (write one with "
                           f"`switchman train --out {path}`)"])
    try:
        from switchman.router import Router, pin_blas_to_one_thread  # heavy; when configured
    except ImportError as exc:
        raise ConfigError([f"{where}.path: cannot import switchman.router: {exc}"]) from exc
    pin_blas_to_one_thread()  # a server predicts one prompt at a time, many times over
    try:
        trained = Router.load(path)
    except Exception as exc:  # any load failure is the same refusal
        raise ConfigError([f"{where}.path: cannot load the router at {path}: {exc}"]) from exc
    known = list(trained.models)
    problems = [f"{where}.model_map.{key}: {key!r} is not a model of the router at {path}"
                f"{did_you_mean(key, known)}; its models: {known}"
                for key in router.model_map if key not in known]
    if prices:
        trained.reprice({name: prices[router.model_map.get(name, name)] for name in known
                         if router.model_map.get(name, name) in prices})
    scorer = MappedScorer(trained, router.model_map, pool)
    if not scorer.models and not problems:
        problems.append(f"{where}.path: none of the router's models {known} is in the pool "
                        "(map them with model_map)")
    if problems:
        raise ConfigError(problems)
    return scorer


def load_scorer(router: RouterConfig, config: Config) -> Scorer:
    """The scorer behind one configured router name (imports a trained router lazily)."""
    subset = set(router.models) if router.models is not None else None
    members = [m for m in config.models if subset is None or m.name in subset]
    if router.path is None:
        return PriorScorer(members, config.default_cost_weight)
    index = next((i for i, rc in enumerate(config.routers) if rc.name == router.name), None)
    where = f"routers[{index}]" if index is not None else f"router {router.name!r}"
    return load_trained(router, [m.name for m in members], where,
                        prices=configured_prices(members))


def configured_prices(models: Sequence[Model]) -> dict[str, tuple[float, float]]:
    """(input, output) USD per Mtok of the models whose configuration sets a price; a model
    that sets none keeps the prices its router was trained with (not a free model)."""
    return {m.name: (m.input_per_mtok, m.output_per_mtok) for m in models
            if {"input_per_mtok", "output_per_mtok"} & m.model_fields_set}


def cost_weight_of(router: RouterConfig, scorer: Scorer) -> float:
    return scorer.default_cost_weight if router.cost_weight is None else router.cost_weight
