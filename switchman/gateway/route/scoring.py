"""What a router name scores with: a trained router, or the pool's declared priors.

The gateway depends only on the small :class:`Scorer` protocol, so a router trained with
``switchman train`` (``switchman.router.Router``) and the prior-based fallback plug in the same
way, and a future estimator needs no gateway change (DESIGN: estimator and policy apart).
A trained router takes further pool models in from profile files (``routers[].profiles``);
each scorer says where its estimate of each pool model comes from (``known_from``), which
``config check`` and the start-up log print (:func:`knowledge`), and from how many prompts
(``prompts_seen``), which sets how far an online learner trusts that estimate.
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
        self.known_from = {m.name: f"only from its quality_prior {m.quality_prior:g}"
                           if m.quality_prior is not None else
                           f"only from the neutral {NEUTRAL_PRIOR:g} (no quality_prior)"
                           for m in models}
        self.prompts_seen = {m.name: 0 for m in models}  # a prior is a guess: trusted least
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
    """A trained router seen through pool names; models the pool lacks are dropped.

    ``known_from`` (router model name -> where its estimate comes from) is kept under the
    pool names, for :func:`knowledge`.
    """

    def __init__(self, inner: TrainedScorer, model_map: Mapping[str, str],
                 pool_names: Sequence[str], known_from: Mapping[str, str] | None = None,
                 prompts_seen: Mapping[str, int] | None = None) -> None:
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
        self.known_from = self._by_pool_name(known_from or {})
        self.prompts_seen = self._by_pool_name(prompts_seen or {})
        self.unknown_to_pool = tuple(n for n in inner.models if n not in self._keep)
        self.default_cost_weight = float(inner.default_cost_weight)

    def _by_pool_name(self, per_model: Mapping[str, Any]) -> dict[str, Any]:
        """``per_model`` (router model name -> value) keyed by the kept models' pool names."""
        return {target: per_model[name] for name, target
                in zip(self._keep, self.models, strict=True) if name in per_model}

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
    """The trained router at ``router.path``, with the models of ``router.profiles`` taken
    in, seen through ``pool`` names.

    ``prices`` (pool name -> USD per Mtok in, out) are the pool's configured prices: the
    router decides on them, not on the prices of its training table (its cost model
    predicts tokens; dollars follow from the price list in force).

    Raises :class:`ConfigError` naming every problem under ``where`` (``routers[0]``): no
    directory there, a router that does not load, a profile file that cannot be read, is
    for a model not in the pool, or was made against another router, ``model_map`` keys
    the router does not have (a typo there would silently leave a model unmapped), no model
    in the pool.
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
    problems, from_files = _take_profiles(trained, router, pool, where)
    known = list(trained.models)
    problems += [f"{where}.model_map.{key}: {key!r} is not a model of the router at {path}"
                 f"{did_you_mean(key, known)}; its models: {known}"
                 for key in router.model_map if key not in known]
    if prices:
        trained.reprice({name: prices[router.model_map.get(name, name)] for name in known
                         if router.model_map.get(name, name) in prices})
    scorer = MappedScorer(trained, router.model_map, pool,
                          _known_from(trained.describe_models(), from_files),
                          trained.prompts_seen())
    if not scorer.models and not problems:
        problems.append(f"{where}.path: none of the router's models {known} is in the pool "
                        "(map them with model_map)")
    if problems:
        raise ConfigError(problems)
    return scorer


def _take_profiles(trained: Any, router: RouterConfig, pool: Sequence[str], where: str
                   ) -> tuple[list[str], dict[str, str]]:
    """Add ``router.profiles`` to ``trained`` (a ``switchman.router.Router``); return the
    problems, each under ``where.profiles[i]``, and {model: the file it came from}."""
    from switchman.profile_file import ProfileFileError, read_profile_file

    problems: list[str] = []
    taken: dict[str, int] = {}  # model -> the index of the file it came from
    for i, file in enumerate(router.profiles):
        key = f"{where}.profiles[{i}]"
        try:
            profile = read_profile_file(file)
        except ProfileFileError as exc:
            problems.append(f"{key}: {exc}")
            continue
        target = router.model_map.get(profile.model, profile.model)
        foreign = trained.foreign(profile)
        if foreign is not None:
            problems.append(f"{key}: {file}: {foreign}")
        elif target not in pool:
            problems.append(f"{key}: {file} is the profile of {target!r}, which is not a "
                            f"pool model of this router{did_you_mean(target, pool)}; its "
                            f"pool: {list(pool)}")
        elif profile.model in taken:
            problems.append(f"{key}: {file} is a second profile of {profile.model!r} (after "
                            f"{where}.profiles[{taken[profile.model]}]); keep one")
        else:
            try:
                trained.add_profile_file(profile)
            except ValueError as exc:
                problems.append(f"{key}: {file}: {exc}")
                continue
            taken[profile.model] = i
    trained_models = set(trained.trained_models_)
    return problems, {model: router.profiles[i] + (", in place of its training"
                                                   if model in trained_models else "")
                      for model, i in taken.items()}


def _known_from(rows: Sequence[Mapping[str, Any]], from_files: Mapping[str, str]
                ) -> dict[str, str]:
    """Router model -> where its estimate comes from, from ``Router.describe_models``
    rows and the profile files the configuration added."""
    known = {}
    for row in rows:
        size = None if row["prompts"] is None else f"{row['prompts']} prompts"
        source = None if row["source"] == "-" else row["source"]
        origin = " of ".join(part for part in (size, source) if part) or "size not kept"
        if row["model"] in from_files:
            known[row["model"]] = f"from profile {from_files[row['model']]} ({origin})"
        elif row["known_from"] == "profile":
            known[row["model"]] = f"from a profile saved in the router ({origin})"
        else:
            known[row["model"]] = f"from training ({origin})"
    return known


def knowledge(scorer: Scorer, members: Sequence[Model]) -> list[str]:
    """One line per pool model of a router: where the router's estimate of it comes from
    (training, a profile, only a quality prior), or that it never chooses it."""
    known = getattr(scorer, "known_from", {})
    return [f"{m.name} {known[m.name]}" if m.name in known else
            f"{m.name} unknown to this router: never chosen by it (give it a profile: "
            "`switchman profile add`, then routers[].profiles)" for m in members]


def load_scorer(router: RouterConfig, config: Config) -> Scorer:
    """The scorer behind one configured router name (imports a trained router lazily)."""
    members = router_members(router, config)
    if router.path is None:
        return PriorScorer(members, config.default_cost_weight)
    index = next((i for i, rc in enumerate(config.routers) if rc.name == router.name), None)
    where = f"routers[{index}]" if index is not None else f"router {router.name!r}"
    return load_trained(router, [m.name for m in members], where,
                        prices=configured_prices(members))


def router_members(router: RouterConfig, config: Config) -> list[Model]:
    """The pool models ``router`` may choose, in pool order."""
    return [m for m in config.models if router.models is None or m.name in router.models]


def configured_prices(models: Sequence[Model]) -> dict[str, tuple[float, float]]:
    """(input, output) USD per Mtok of the models whose configuration sets a price; a model
    that sets none keeps the prices its router was trained with (not a free model)."""
    return {m.name: (m.input_per_mtok, m.output_per_mtok) for m in models
            if {"input_per_mtok", "output_per_mtok"} & m.model_fields_set}


def cost_weight_of(router: RouterConfig, scorer: Scorer) -> float:
    return scorer.default_cost_weight if router.cost_weight is None else router.cost_weight
