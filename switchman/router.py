"""Router = features (encoder, task classifier) + quality estimator + cost model.

The router predicts; the policy decides. ``estimate`` gives every model's expected quality
and cost for a batch of prompts, and any policy in ``switchman.policy`` turns that into
choices. The task classifier (when the training table labels tasks) runs once per prompt
and its posterior is shared by the estimator and the cost model. A saved router is a
directory with ``router.json`` (format version, names, hyper-parameters) and
``arrays.npz`` (learned state, loaded with ``allow_pickle=False``): no pickled code, so
loading a router never runs anything from disk.

Models are either *trained* (columns of the estimator) or *added* from a profile
(``switchman.profiles``): placed from their outcomes on a few prompts against the trained
models' predictions, with nothing refitted. A router keeps its training prompts
(``training_prompts.parquet``), their observed outcomes and the order in which they are most
informative about a new model, so ``profile select`` can name them and ``profile add`` can
compare a new model's answers with the trained models' real ones. Each added model is also
saved as a profile file of its own (``profiles/<model>.json``, see ``switchman.profile_file``),
which another copy of the same trained router takes in with ``add_profile_file``; the copy
is recognised by ``trained_id``, the fingerprint of the trained part.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import ThreadpoolController

from switchman import policy
from switchman.cost import CostModel
from switchman.embed import Encoder
from switchman.encoders import default_encoder, encoder_by_name
from switchman.estimates import Estimates
from switchman.estimators import QualityEstimator, estimator_from_params, make_estimator
from switchman.estimators.base import RoutingCosts, sub_state
from switchman.eval.training_log import describe_fit
from switchman.features import Features, featurize, make_features
from switchman.features.task_classifier import TaskClassifier, label_tasks, task_codes
from switchman.profile_file import ProfileFile, profile_file_name, write_profile_file
from switchman.profiles import (
    DEFAULT_PRIOR,
    AddedModels,
    PopulationPrior,
    Profile,
    fit_profile,
    select_prompts,
)

if TYPE_CHECKING:  # serving a router needs neither pandas nor the data layer (see load)
    import pandas as pd

    from switchman.data import OutcomeMatrices

log = logging.getLogger(__name__)

#: 2: one task classifier per router, saved under "tasks."; 3: an array that several parts
#: of the router hold (the neighbour families' training embeddings) is stored once, and
#: ``shared_arrays`` in router.json names the other keys it stands for; 4: models added from
#: profiles, the training prompts and outcomes, the prompts' selection order, mean tokens.
FORMAT_VERSION = 4
#: A version-2 router is a version-3 one with nothing shared; a version-3 one, a version-4
#: one without training prompts (it routes and takes profiles, but cannot select prompts).
_READABLE_VERSIONS = (2, 3, 4)
_CONFIG_FILE = "router.json"
_PROMPTS_FILE = "training_prompts.parquet"
_ESTIMATE_CHUNK = 1024  # prompts featurised and scored at once by ``Router.estimate``
_ARRAYS_FILE = "arrays.npz"
_PROFILES_DIR = "profiles"  # one file per added model (switchman.profile_file)


class RouterLoadError(ValueError):
    """A router directory that is missing, incomplete or from an incompatible version."""


class Router:
    """A trained router over its trained models and the models added to it by profile."""

    #: Models added by profile, in column order after the trained ones.
    profiles_: list[Profile]
    #: The training prompts' observed quality (n, m_trained) and embeddings; the prompts
    #: themselves are ``training_prompts_``.
    training_quality_: np.ndarray | None = None
    training_embeddings_: np.ndarray | None = None
    #: Where the training outcomes came from (the CLI sets the file), for ``models``.
    training_source_: str | None = None
    #: The fingerprint of the trained part, once computed or read (see ``trained_id``).
    trained_id_: str | None = None

    _training_prompts: pd.DataFrame | None = None
    _training_prompts_file: Path | None = None  # saved prompts not read yet

    def __init__(self, estimator: QualityEstimator, encoder: Encoder | None = None,
                 name: str = "default") -> None:
        self.estimator = estimator
        self.encoder = encoder
        self.name = name
        self.profiles_ = []
        self._columns: np.ndarray | None = None
        self._added: AddedModels | None = None  # the profiles as one map (_refresh_models)

    @property
    def training_prompts_(self) -> pd.DataFrame | None:
        """The training prompts (``prompt_id``, ``prompt`` and, where the table labels them,
        ``task``; None when trained from features alone). A loaded router reads them from
        its directory when first asked (profile selection and placement do; routing never
        does), so that a serving gateway loads neither them nor pandas and pyarrow: ~70 MB
        of its memory."""
        if self._training_prompts_file is not None:
            import pandas as pd

            path, self._training_prompts_file = self._training_prompts_file, None
            try:
                self._training_prompts = pd.read_parquet(path)
            except (OSError, ValueError) as exc:  # pyarrow's errors are both
                raise RouterLoadError(f"{path}: cannot read the router's training prompts: "
                                      f"{exc}") from exc
        return self._training_prompts

    @training_prompts_.setter
    def training_prompts_(self, prompts: pd.DataFrame | None) -> None:
        self._training_prompts, self._training_prompts_file = prompts, None

    def _encoder(self) -> Encoder:
        if self.encoder is None:
            self.encoder = default_encoder()
        return self.encoder

    def _reads_lexical(self) -> bool:
        """Whether this router's task classifier reads n-grams (``Features.lexical``);
        before training, whether the one training may fit would."""
        if not hasattr(self, "task_classifier_"):
            return self.estimator.reads_tasks()
        return self.task_classifier_ is not None and self.task_classifier_.reads_lexical()

    def features(self, prompts: Sequence[str], show_progress: bool = False) -> Features:
        """The features this router reads: n-grams only for a task classifier that does."""
        return featurize(prompts, self._encoder(), lexical=self._reads_lexical(),
                         show_progress=show_progress)

    def fit(self, outcomes: pd.DataFrame,
            prices: Mapping[str, tuple[float, float]] | None = None,
            show_progress: bool = False) -> Router:
        """Train on a validated outcomes table (see ``switchman.data``)."""
        from switchman.data import to_matrices

        matrices = to_matrices(outcomes)
        classifies = self.estimator.reads_tasks() and task_codes(matrices.tasks) is not None
        features = featurize(matrices.prompts, self._encoder(), lexical=classifies,
                             show_progress=show_progress)
        return self.fit_matrices(features, matrices, prices)

    def fit_matrices(self, features: Features, matrices: OutcomeMatrices,
                     prices: Mapping[str, tuple[float, float]] | None = None) -> Router:
        """Train on a table's matrices and its prompts' features, made once by a caller that
        trains several routers (``switchman eval``); the same router ``fit`` would train."""
        return self.fit_features(features, matrices.models, matrices.quality, matrices.cost,
                                 matrices.input_tokens, matrices.output_tokens, prices,
                                 tasks=matrices.tasks, prompt_ids=matrices.prompt_ids,
                                 prompt_texts=matrices.prompts)

    def fit_features(self, features: Features, models: Sequence[str], quality: np.ndarray,
                     cost: np.ndarray, input_tokens: np.ndarray, output_tokens: np.ndarray,
                     prices: Mapping[str, tuple[float, float]] | None = None,
                     tasks: np.ndarray | None = None,
                     prompt_ids: Sequence[str] | None = None,
                     prompt_texts: Sequence[str] | None = None) -> Router:
        """Train on already-encoded prompts (lets a benchmark encode once for many routers).

        ``tasks`` are the training prompts' task labels, where the table has them;
        ``prompt_ids`` and ``prompt_texts`` are kept for ``profile select`` (without them
        the router cannot name its training prompts).
        """
        self.models_ = self.trained_models_ = tuple(models)
        self.profiles_ = []
        self._columns = None
        self._added = None
        self.trained_id_ = None
        self.training_quality_ = np.asarray(quality, dtype=np.float32)
        self.training_embeddings_ = np.asarray(features.embeddings, dtype=np.float32)
        import pandas as pd

        self.training_prompts_ = None
        if prompt_ids is not None and prompt_texts is not None:
            self.training_prompts_ = pd.DataFrame({
                "prompt_id": np.asarray(prompt_ids, dtype=str), "prompt": list(prompt_texts)})
            if tasks is not None:  # profile selection samples them task by task
                self.training_prompts_["task"] = np.asarray(tasks, dtype=str)
        with _one_blas_thread():
            # only estimators that read tasks need the classifier; the cost model's task
            # mode is chosen on held-out quality, which only the (task-reading) default has
            features, self.task_classifier_ = label_tasks(
                features, tasks if self.estimator.reads_tasks() else None)
            self.cost_model_ = CostModel().fit(features, list(models), input_tokens,
                                               output_tokens, cost, prices)
            decision_costs = self.cost_model_.training_costs(features)
            self.estimator.fit(features, quality,
                               RoutingCosts(cost, tuple(decision_costs.values())))
            predicted = self.estimator.oof_quality_
            decision_cost = self._keep_cost_mode(decision_costs)
            if predicted is None:
                predicted = self.estimator.predict(features)
            self.default_cost_weight_ = self._iso_quality_weight(predicted, decision_cost,
                                                                 quality)
            if log.isEnabledFor(logging.INFO):
                log.info("%s", describe_fit(Estimates(self.models_, predicted, decision_cost),
                                            quality, cost, self.default_cost_weight_,
                                            out_of_fold=self.estimator.oof_quality_ is not None))
        if self.estimator.top_model_ >= 0:
            log.info("top operating point (cost weight 0): %s, the best model on average; "
                     "per-prompt picks did not beat it on prompts the estimator did not see",
                     self.models_[self.estimator.top_model_])
        return self

    def _keep_cost_mode(self, decision_costs: dict[str, np.ndarray]) -> np.ndarray:
        """Keep the cost predictor the estimator routed best with out of fold (its
        ``cost_choice_``; with no choice the per-prompt one stays) and return its training
        costs. ``decision_costs`` lists the per-prompt predictor first, so ties keep it."""
        choice = self.estimator.cost_choice_
        mode = "prompt" if choice is None else list(decision_costs)[choice]
        self.cost_model_.mode_ = mode
        return decision_costs[mode]

    def _iso_quality_weight(self, predicted: np.ndarray, decision_cost: np.ndarray,
                            quality: np.ndarray) -> float:
        """The cheapest cost weight whose (held-out) quality matches the best single model.

        That is the gateway's default trade-off: the best model's quality for less money.
        Out-of-fold predictions are used where the estimator has them, so the choice is not
        flattered by in-sample fit.
        """
        estimates = Estimates(self.models_, predicted, decision_cost)
        target = float(quality.mean(axis=0).max())
        return policy.calibrate_cost_weight(estimates, target_quality=target,
                                            observed_quality=quality)

    @property
    def models(self) -> tuple[str, ...]:
        return self.models_

    @property
    def default_cost_weight(self) -> float:
        return self.default_cost_weight_

    def estimate_features(self, features: Features) -> Estimates:
        if len(features) == 0:  # nothing to predict; spares every estimator the edge case
            empty = np.zeros((0, len(self.models_)))
            return Estimates(self.models_, empty, empty.copy())
        with _one_blas_thread():
            if self.task_classifier_ is not None:
                features = self.task_classifier_.with_posteriors(features)
            quality = self.estimator.predict(features)
            cost = self.cost_model_.predict(features)
            if self._added is not None:  # models added by profile: trained, then added
                added = self._added.predict(quality, features)
                quality = np.hstack([quality, added])[:, self._columns]
                cost = cost[:, self._columns]
            return Estimates(self.models_, quality, cost)

    def _refresh_models(self) -> None:
        """``models_`` and their columns among (trained..., added...) after a profile change.

        A trained model that a profile replaces keeps its (unused) column, so the estimator
        and the cost model never have to drop one.
        """
        added = [p.name for p in self.profiles_]
        kept = [j for j, name in enumerate(self.trained_models_) if name not in added]
        n_trained = len(self.trained_models_)
        self.models_ = tuple([self.trained_models_[j] for j in kept] + added)
        self._columns = (None if not added else
                         np.array(kept + list(range(n_trained, n_trained + len(added)))))
        self._added = AddedModels(self.profiles_) if added else None

    def _full_names(self) -> list[str]:
        return list(self.trained_models_) + [p.name for p in self.profiles_]

    def add_profiles(self, outcomes: pd.DataFrame, source: str = "",
                     prices: Mapping[str, tuple[float, float]] | None = None,
                     replace: bool = False) -> list[str]:
        """Add every model of a validated ``outcomes`` table by profile; return their names.

        Each model is profiled from the prompts it answered (they need not be shared, nor
        be training prompts). A model the router already has is an error unless
        ``replace``: then a trained one is shadowed by the profile and an added one
        re-profiled. ``prices`` (USD per Mtok) set an added model's prices; without them,
        they are recovered from the table's dollars and tokens.
        """
        names = sorted(str(m) for m in outcomes["model"].unique())
        present = [m for m in names if m in self.models_]
        if present and not replace:
            raise ValueError(f"{source}: model(s) {present} are already in the router; pass "
                             "--replace to profile them anew")
        prompts = outcomes.drop_duplicates("prompt_id")[["prompt_id", "prompt"]]
        features = self.features(prompts["prompt"].tolist())
        with _one_blas_thread():
            if self.task_classifier_ is not None:
                features = self.task_classifier_.with_posteriors(features)
            anchors = self.estimator.predict(features)
        anchors = self._observed_where_known(prompts, anchors)
        row_of = {pid: i for i, pid in enumerate(prompts["prompt_id"])}
        prior = (DEFAULT_PRIOR if self.training_quality_ is None
                 else PopulationPrior.fit(self.training_quality_))
        for name in names:
            rows = outcomes[outcomes["model"] == name]
            index = rows["prompt_id"].map(row_of).to_numpy()
            self._drop_profile(name)
            answered = features.rows(index)
            self.profiles_.append(fit_profile(name, source, rows["quality"].to_numpy(),
                                              anchors[index], answered, prior))
            self.cost_model_.append(answered, rows["input_tokens"].to_numpy(float),
                                    rows["output_tokens"].to_numpy(float),
                                    rows["cost_usd"].to_numpy(float),
                                    None if prices is None else prices.get(name))
        self._refresh_models()
        return names

    def _observed_where_known(self, prompts: pd.DataFrame, predicted: np.ndarray) -> np.ndarray:
        """The trained models' observed training outcomes for the prompts that are training
        prompts (same id and text), their predictions for the others."""
        if self.training_prompts_ is None or self.training_quality_ is None:
            return predicted
        import pandas as pd

        known = pd.Series(np.arange(len(self.training_prompts_)),
                          index=self.training_prompts_["prompt_id"].to_numpy())
        at = prompts["prompt_id"].map(known).to_numpy(dtype=float)
        hit = ~np.isnan(at)
        texts = self.training_prompts_["prompt"].to_numpy(dtype=object)
        hit[hit] = texts[at[hit].astype(int)] == prompts["prompt"].to_numpy(dtype=object)[hit]
        out = predicted.copy()
        out[hit] = self.training_quality_[at[hit].astype(int)]
        return out

    def _drop_profile(self, name: str) -> None:
        for k, profile in enumerate(self.profiles_):
            if profile.name == name:
                del self.profiles_[k]
                self.cost_model_.drop(len(self.trained_models_) + k)
                return

    @property
    def trained_id(self) -> str:
        """The fingerprint of what training fixed: the trained models, the encoder, the
        estimator's and the task classifier's state. A router and every copy of it that
        profiles extend share it; any other training differs. Profile files are made
        against it and refused by a router with another."""
        if self.trained_id_ is None:
            self.trained_id_ = _fingerprint(self._trained_state(), [
                list(self.trained_models_), self._encoder().name, self.estimator.kind,
                self.estimator.get_params()])
        return self.trained_id_

    def _trained_state(self) -> dict[str, np.ndarray]:
        arrays = {f"estimator.{k}": v for k, v in self.estimator.state_arrays().items()}
        if self.task_classifier_ is not None:
            arrays.update({f"tasks.{k}": v
                           for k, v in self.task_classifier_.state_arrays().items()})
        return arrays

    def profile_file(self, name: str) -> ProfileFile:
        """Added model ``name`` as a profile file's content: its profile and cost column,
        made against this router's ``trained_id``."""
        k = next((k for k, p in enumerate(self.profiles_) if p.name == name), None)
        if k is None:
            raise KeyError(f"{name!r} is not a model added by profile")
        profile = self.profiles_[k]
        arrays = {f"profile.{key}": v for key, v in profile.state_arrays().items()}
        column = self.cost_model_.column(len(self.trained_models_) + k)
        arrays.update({f"cost.{key}": v for key, v in column.items()})
        return ProfileFile(name, profile.source, self.trained_id, self.trained_models_, arrays)

    def foreign(self, profile: ProfileFile) -> str | None:
        """Why ``profile`` cannot join this router (made against another), or None."""
        if profile.router_id == self.trained_id:
            return None
        return (f"made against another router (id {profile.router_id}, trained on "
                f"{list(profile.trained_models)}); this router's id is {self.trained_id}, "
                f"trained on {list(self.trained_models_)}")

    def add_profile_file(self, profile: ProfileFile) -> None:
        """Take in the model of a profile file made against this router (or a copy of it),
        as it was estimated: nothing is refitted. A model the router already has is
        replaced, as ``profile add --replace`` would (whoever names the file means it).
        Raises ``ValueError`` for a file made against another router, or one that does
        not fit this router's shapes."""
        foreign = self.foreign(profile)
        if foreign is not None:
            raise ValueError(foreign)
        added = Profile.from_state(profile.model, profile.source,
                                   sub_state(profile.arrays, "profile."))
        n_tasks = (None if self.task_classifier_ is None
                   else self.task_classifier_.intercept_.shape[0])
        shapes_fit = (added.weights.shape == added.offsets.shape == (len(self.trained_models_),)
                      and (added.task_residuals is not None) == (n_tasks is not None)
                      and (added.task_residuals is None or added.task_residuals.shape
                           == (n_tasks,))
                      and (added.task_residuals is not None or (
                          added.embeddings is not None and added.residuals is not None)))
        if not shapes_fit:
            raise ValueError("its profile's arrays do not fit this router's trained models "
                             "and tasks")
        self.cost_model_.insert_column(sub_state(profile.arrays, "cost."))
        self.profiles_.append(added)
        if [p.name for p in self.profiles_].count(added.name) > 1:
            self._drop_profile(added.name)  # the earlier one: the file's replaces it
        self._refresh_models()

    def reprice(self, prices: Mapping[str, tuple[float, float]]) -> list[str]:
        """Decide on these prices (USD per Mtok in, out) for the models they name; return
        the router's models they named. The others keep the prices they were trained with."""
        columns = {j: prices[name] for j, name in enumerate(self._full_names()) if name in prices}
        self.cost_model_.reprice(columns)
        return [m for m in self.models_ if m in prices]

    def select_prompts(self, n: int) -> pd.DataFrame:
        """The ``n`` training prompts that tell the most about a new model (``prompt_id``,
        ``prompt``), most informative first; deterministic."""
        if (self.training_prompts_ is None or self.training_embeddings_ is None
                or self.training_quality_ is None):
            raise ValueError("this router does not keep its training prompts (saved before "
                             "switchman stored them, or trained from features alone); retrain "
                             "it with `switchman train` to select profile prompts")
        if not 1 <= n <= len(self.training_prompts_):
            raise ValueError(f"--n {n}: choose between 1 and {len(self.training_prompts_)} "
                             "(the router's training prompts)")
        prompts = self.training_prompts_
        strata = prompts["task"].to_numpy(dtype=str) if "task" in prompts else None
        with _one_blas_thread():
            picks = select_prompts(self.training_embeddings_, n, strata)
        return prompts.iloc[picks][["prompt_id", "prompt"]].reset_index(drop=True)

    def describe_models(self) -> list[dict[str, Any]]:
        """Per model: where it is known from, from how many prompts, and its prices."""
        price = self.cost_model_.price_per_token_ * 1e6
        columns = self._columns if self._columns is not None else range(len(self.models_))
        by_name = {p.name: p for p in self.profiles_}
        n_train = None if self.training_quality_ is None else len(self.training_quality_)
        rows = []
        for name, column in zip(self.models_, columns, strict=True):
            profile = by_name.get(name)
            rows.append({
                "model": name,
                "known_from": "profile" if profile else "training",
                "source": (profile.source if profile else self.training_source_) or "-",
                "prompts": profile.n_prompts if profile else n_train,
                "input_per_mtok": float(price[column, 0]),
                "output_per_mtok": float(price[column, 1]),
                "anchors": ([a for a, _ in profile.anchors(self.trained_models_)]
                            if profile else []),
            })
        return rows

    def prompts_seen(self) -> dict[str, int]:
        """Per model, the prompts its estimate was learned from (its training table's or its
        profile's): how far an online learner may trust that estimate."""
        return {row["model"]: row["prompts"] for row in self.describe_models()
                if row["prompts"] is not None}

    def estimate(self, prompts: Sequence[str], show_progress: bool = False) -> Estimates:
        """Expected quality and cost of every model for every prompt.

        Prompts are embedded in one pass (the encoder batches), then featurised and scored
        in chunks, so memory stays flat however many prompts are routed: hashed n-gram
        counts take ~10 KB per prompt and their tf-idf as much again.
        """
        prompts = list(prompts)
        if len(prompts) <= _ESTIMATE_CHUNK:  # the gateway's one prompt: no chunks to stack
            return self.estimate_features(self.features(prompts, show_progress=show_progress))
        embeddings = self._encoder().encode(prompts, show_progress=show_progress)
        lexical = self._reads_lexical()
        parts = [self.estimate_features(make_features(prompts[start:start + _ESTIMATE_CHUNK],
                                                      embeddings[start:start + _ESTIMATE_CHUNK],
                                                      lexical))
                 for start in range(0, len(prompts), _ESTIMATE_CHUNK)]
        return Estimates(self.models_, np.vstack([p.quality for p in parts]),
                         np.vstack([p.cost for p in parts]))

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "models": list(self.models_),
            "trained_models": list(self.trained_models_),
            "profiles": [{"name": p.name, "source": p.source} for p in self.profiles_],
            "training_source": self.training_source_,
            "encoder": self._encoder().name,
            "default_cost_weight": self.default_cost_weight_,
            "estimator": {"kind": self.estimator.kind, "params": self.estimator.get_params()},
            "trained_id": self.trained_id,
        }
        arrays = self._trained_state()
        arrays.update({f"cost.{k}": v for k, v in self.cost_model_.state_arrays().items()})
        for k, profile in enumerate(self.profiles_):
            arrays.update({f"profile{k}.{key}": v for key, v in profile.state_arrays().items()})
        if self.training_quality_ is not None and self.training_embeddings_ is not None:
            arrays["training.quality"] = self.training_quality_
            arrays["training.embeddings"] = self.training_embeddings_
        if self.training_prompts_ is not None:
            self.training_prompts_.to_parquet(directory / _PROMPTS_FILE, index=False)
        else:
            (directory / _PROMPTS_FILE).unlink(missing_ok=True)
        arrays, config["shared_arrays"] = _store_once(arrays)
        np.savez(directory / _ARRAYS_FILE, **arrays)
        (directory / _CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        self._save_profile_files(directory / _PROFILES_DIR)
        return directory

    def _save_profile_files(self, folder: Path) -> None:
        """One profile file per added model in ``folder``; files of models no longer in
        the router are removed (the folder too, once empty)."""
        written: set[str] = set()
        for k, profile in enumerate(self.profiles_):
            name = profile_file_name(profile.name)
            if name in written:  # two names that differ only in unsafe characters
                name = f"{name.removesuffix('.json')}-{k}.json"
            write_profile_file(folder / name, self.profile_file(profile.name))
            written.add(name)
        if folder.is_dir():
            for stale in folder.glob("*.json"):
                if stale.name not in written:
                    stale.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty

    @classmethod
    def load(cls, directory: str | Path, encoder: Encoder | None = None) -> Router:
        """Load a saved router; ``encoder`` overrides the one it names (tests, caches)."""
        directory = Path(directory)
        config = _read_config(directory)
        try:
            with np.load(directory / _ARRAYS_FILE, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise RouterLoadError(
                f"{directory}: {_ARRAYS_FILE} is not a valid router arrays file "
                f"({type(exc).__name__}); retrain with `switchman train`") from exc
        try:
            shared = config.get("shared_arrays", {})
            if not isinstance(shared, dict):
                raise ValueError("shared_arrays is not a mapping of array names")
            for key in [k for k in arrays if k.endswith(".train_embeddings")]:
                # column-major, as fitting makes them (``Features.reference_embeddings``):
                # routers saved before that kept them row-major
                arrays[key] = np.asfortranarray(arrays[key])
            for key, stored_as in shared.items():
                arrays[key] = arrays[stored_as]  # one array in memory for every holder
            estimator = estimator_from_params(config["estimator"]["kind"],
                                              config["estimator"]["params"])
            estimator.load_state(sub_state(arrays, "estimator."))
            router = cls(estimator, encoder or encoder_by_name(config["encoder"]),
                         name=config["name"])
            router.trained_models_ = tuple(config.get("trained_models", config["models"]))
            router.cost_model_ = CostModel().load_state(sub_state(arrays, "cost."))
            router.training_source_ = config.get("training_source")
            router.trained_id_ = config.get("trained_id") or _fingerprint(
                {k: v for k, v in arrays.items() if k.startswith(("estimator.", "tasks."))},
                [list(router.trained_models_), config["encoder"], config["estimator"]["kind"],
                 config["estimator"]["params"]])
            router.profiles_ = [Profile.from_state(p["name"], p["source"],
                                                   sub_state(arrays, f"profile{k}."))
                                for k, p in enumerate(config.get("profiles", []))]
            router._refresh_models()
            if list(router.models_) != list(config["models"]):
                raise ValueError(f"models {config['models']} do not match the trained models "
                                 f"and profiles {list(router.models_)}")
            router.training_quality_ = arrays.get("training.quality")
            router.training_embeddings_ = arrays.get("training.embeddings")
            if (directory / _PROMPTS_FILE).is_file():
                router._training_prompts_file = directory / _PROMPTS_FILE
            task_state = sub_state(arrays, "tasks.")
            router.task_classifier_ = (TaskClassifier().load_state(task_state)
                                       if task_state else None)
            if router.task_classifier_ is None and router.cost_model_.task_cost_ is not None:
                raise ValueError("per-task costs are saved but the task classifier is not")
            router.default_cost_weight_ = float(config["default_cost_weight"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RouterLoadError(f"{directory}: router files are inconsistent: {exc}") from exc
        return router


def _store_once(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays with each distinct one kept under its first key, {other key: that key}).

    The task mixtures' neighbour residuals and the k-NN family each keep the training
    embeddings: on routellm's 15k prompts that was 71 MB on disk and in memory for 24 MB of
    content. Only arrays of one dtype and shape are compared, so this costs a few
    comparisons of the large arrays.
    """
    kept: dict[str, np.ndarray] = {}
    shared: dict[str, str] = {}
    for key, array in arrays.items():
        twin = next((k for k, a in kept.items() if a.dtype == array.dtype
                     and a.shape == array.shape and np.array_equal(a, array)), None)
        if twin is None:
            kept[key] = array
        else:
            shared[key] = twin
    return kept, shared


def _fingerprint(arrays: Mapping[str, np.ndarray], spec: list[Any]) -> str:
    """A short hash of ``arrays`` (names, dtypes, shapes, bytes) and a JSON-able ``spec``."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


@functools.cache
def _blas_libraries() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the BLAS libraries loaded (found once)."""
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


_blas_pinned = False


def pin_blas_to_one_thread() -> None:
    """One BLAS thread for the whole process from now on (servers call this once).

    Routing calls then skip even the per-call limit below.
    """
    global _blas_pinned
    for library in _blas_libraries():
        library.set_num_threads(1)  # applied now, never restored
    _blas_pinned = True


class _OneBlasThread(contextlib.AbstractContextManager):
    """BLAS on one thread inside the block, each library's own count restored after it.

    What ``ThreadpoolController.limit(limits=1, user_api="blas")`` does, reading and setting
    the thread counts directly: its bookkeeping (a full ``info()`` of every library, twice)
    cost ~14 us a call, a twentieth of routing one prompt; this costs ~1 us.
    """

    def __enter__(self) -> None:
        self._restore = [(lib, n) for lib in _blas_libraries() if (n := lib.num_threads) != 1]
        for library, _ in self._restore:
            library.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        for library, threads in self._restore:
            library.set_num_threads(threads)


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """Run BLAS on one thread: our products are small or many, and on a busy 2-core box
    BLAS worker threads spend more time waiting on each other than computing (measured:
    a single-prompt prediction 10x slower, a full mmlupro fit 190 s vs 42 s)."""
    if _blas_pinned:
        return contextlib.nullcontext()
    return _OneBlasThread()


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / _CONFIG_FILE
    if not directory.is_dir():
        raise RouterLoadError(f"{directory}: no such router directory")
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise RouterLoadError(
            f"{directory}: not a router directory ({_CONFIG_FILE} is missing)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RouterLoadError(f"{path}: cannot read: {exc}") from exc
    version = config.get("format_version") if isinstance(config, dict) else None
    if version not in _READABLE_VERSIONS:
        raise RouterLoadError(
            f"{path}: format_version {version!r} is not supported by this switchman "
            f"(reads {' or '.join(map(str, _READABLE_VERSIONS))}); retrain with "
            "`switchman train`"
        )
    return config


def new_router(name: str = "default", encoder: Encoder | None = None, seed: int = 0) -> Router:
    """An untrained router for one of ``switchman.estimators.ROUTER_NAMES``."""
    return Router(make_estimator(name, seed=seed), encoder=encoder, name=name)


__all__ = ["FORMAT_VERSION", "Router", "RouterLoadError", "new_router",
           "pin_blas_to_one_thread"]
