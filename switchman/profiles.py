"""A model as a profile: placed from its answers on a few prompts, with nothing refitted.

A trained router predicts, for any prompt, the quality of each model it was trained on;
those predicted columns are the prompt representation every model shares. An added model
is profiled against them: it is taken to behave like a mixture of trained *anchor* models
plus its own offset, and the mixture is found from its observed outcomes on whatever
prompts it answered. Each anchor ``a`` is one hypothesis, "the new model is ``a`` shifted by
a constant"; its weight is that hypothesis's likelihood under Gaussian noise of unknown
variance (Bayesian model averaging with the variance profiled out), so one strongly similar
anchor dominates when the answers say so and several share the weight when they do not.
Offsets are shrunk toward zero by a prior measured on the trained models themselves
(``offset_prior``). What the mixture still misses is kept as residuals per task (read
through the router's task posteriors) or, without a task classifier, per answered prompt
(read through an embedding kernel), shrunk toward zero.

Predictions are then on the trained models' scale by construction (the same estimator's
outputs, mixed), which is what lets the policy rank an added model against trained ones.
Every estimator family accepts profiles, since a profile only reads the family's
predictions; a router trained on a single model has one anchor, and its profiles are that
model shifted.

Answered prompts are weighed by the share of the training distribution each stands for
(``coverage_weights``), so a selected or otherwise unrepresentative set does not skew a
model's level; ``select_prompts`` picks a set that covers the training distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from switchman.features import Features

#: Kernel width and shrinkage of the residual read-back (as ``KNNEstimator``'s defaults: a
#: near-duplicate prompt counts fully, a loose match little).
_TEMPERATURE = 0.1
_RESIDUAL_SHRINKAGE = 1.0
#: Pseudo-prompts of the offset's shrinkage toward the anchor's own level.
_OFFSET_SHRINKAGE = 1.0
_MIN_VARIANCE = 1e-3  # floor of a hypothesis's residual variance: identical answers are no proof
#: Pseudo-prompts of each task residual's shrinkage toward zero (as the task mixture's).
_TASK_SHRINKAGE = 5.0
_ROWS_PER_BLOCK = 1024  # of AddedModels.predict's products: 48 models, 18 MB at most


@dataclass(frozen=True)
class Profile:
    """One added model: anchor weights over the trained models, offsets, residuals.

    Residuals are kept per task (``task_residuals``, read through the router's task
    posteriors) when the router classifies tasks, else per answered prompt (read through an
    embedding kernel).
    """

    name: str
    source: str  # the outcomes file it was estimated from
    n_prompts: int
    weights: np.ndarray  # (m_trained,), non-negative, sums to 1
    offsets: np.ndarray  # (m_trained,), the model minus each anchor, shrunk
    task_residuals: np.ndarray | None = None  # (n_tasks,)
    embeddings: np.ndarray | None = None  # (n, d) float32: the prompts it answered
    residuals: np.ndarray | None = None  # (n,) what the anchor mixture missed on them

    def predict(self, trained_quality: np.ndarray, features: Features) -> np.ndarray:
        """Expected quality (n,) from the trained models' predictions (n, m_trained)."""
        return AddedModels([self]).predict(trained_quality, features)[:, 0]

    def linear(self) -> tuple[np.ndarray, float]:
        """The anchor mixture as coefficients on the trained models' predictions (m,) and
        an intercept: ``(q + offsets) @ weights == q @ weights + offsets @ weights``."""
        return self.weights, float(self.offsets @ self.weights)

    def local(self, features: Features) -> np.ndarray:
        """What the mixture misses on these prompts (n,), read through the per-prompt
        residual kernel (profiles without task residuals)."""
        assert self.embeddings is not None and self.residuals is not None
        kernel = np.exp((features.embeddings @ self.embeddings.T - 1.0) / _TEMPERATURE)
        return (kernel @ self.residuals) / (kernel.sum(axis=1) + _RESIDUAL_SHRINKAGE)

    def anchors(self, trained: tuple[str, ...], top: int = 2) -> list[tuple[str, float]]:
        """The ``top`` heaviest anchors as (model, weight), for ``switchman models``."""
        order = np.argsort(-self.weights, kind="stable")[:top]
        return [(trained[i], float(self.weights[i])) for i in order if self.weights[i] > 0.005]

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"n_prompts": np.array(self.n_prompts), "weights": self.weights,
                  "offsets": self.offsets}
        for key in ("task_residuals", "embeddings", "residuals"):
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        return arrays

    @classmethod
    def from_state(cls, name: str, source: str, arrays: Mapping[str, np.ndarray]) -> Profile:
        return cls(name, source, int(arrays["n_prompts"]), arrays["weights"], arrays["offsets"],
                   arrays.get("task_residuals"), arrays.get("embeddings"),
                   arrays.get("residuals"))


class AddedModels:
    """Every added model's profile as one linear map over the trained models' predictions.

    A server predicts one prompt at a time: a product per profile cost about as much as
    the rest of routing with eight of them (mmlupro), one product for all costs one.
    The estimates are the profiles' own (same sums, in one matrix).
    """

    def __init__(self, profiles: list[Profile]) -> None:
        self.profiles = profiles
        linear = [p.linear() for p in profiles]
        self.coefficients = np.column_stack([c for c, _ in linear])  # (m_trained, k)
        self.intercepts = np.array([b for _, b in linear])  # (k,)
        by_task = [p.task_residuals is not None for p in profiles]
        self.task_columns = np.flatnonzero(by_task)
        self.task_residuals = (np.column_stack([profiles[j].task_residuals
                                                for j in self.task_columns])
                               if self.task_columns.size else None)  # (n_tasks, k_task)
        self.kernel_columns = np.flatnonzero(~np.asarray(by_task, dtype=bool))

    def predict(self, trained_quality: np.ndarray, features: Features) -> np.ndarray:
        """Expected quality (n, k) of the added models, in the profiles' order."""
        out = _by_column(trained_quality, self.coefficients) + self.intercepts
        if self.task_residuals is not None:
            if features.task_probs is None:
                names = [self.profiles[j].name for j in self.task_columns]
                raise ValueError(f"profile(s) {names}: need task posteriors")
            out[:, self.task_columns] += _by_column(features.task_probs, self.task_residuals)
        for j in self.kernel_columns:
            out[:, j] += self.profiles[j].local(features)
        return np.clip(out, 0.0, 1.0)


def _by_column(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` with each output column summed exactly as it would be alone: a matrix
    product may round a column differently with other columns beside it, and a model's
    estimates must not depend on which other models were added with it (a profile file
    served beside other profiles scores as in the router it came from). Row blocks bound
    the (rows, k, m) temporary."""
    out = np.empty((a.shape[0], b.shape[1]))
    for start in range(0, a.shape[0], _ROWS_PER_BLOCK):
        block = a[start:start + _ROWS_PER_BLOCK]
        out[start:start + _ROWS_PER_BLOCK] = (block[:, None, :] * b.T[None, :, :]).sum(axis=2)
    return out


def offset_prior(training_quality: np.ndarray) -> float:
    """How far (squared) a model's level typically lies from its nearest anchor, measured
    on the trained models themselves: each one's mean difference to the trained model it
    tracks most closely (least variance of the difference) on the training prompts.

    It is the prior variance of a new model's offsets: an offset estimated from a few
    noisy answers is shrunk toward zero (the anchor's own level) as much as that noise is
    large against it. A model that answered 25 prompts and came out 5 points above its
    anchor is then not yet believed to beat it, which is what ranking it first would cost.
    """
    q = np.asarray(training_quality, dtype=np.float64)
    m = q.shape[1]
    if m < 2:
        return 0.01
    squares = []
    for b in range(m):
        others = [a for a in range(m) if a != b]
        difference = q[:, [b]] - q[:, others]
        nearest = int(np.argmin(difference.var(axis=0)))
        squares.append(float(difference[:, nearest].mean() ** 2))
    return max(float(np.mean(squares)), 1e-4)


def fit_profile(name: str, source: str, observed: np.ndarray, anchor_quality: np.ndarray,
                features: Features, represents: np.ndarray | None = None,
                offset_variance: float | None = None) -> Profile:
    """Profile a model from its ``observed`` quality (n,) on n prompts.

    ``anchor_quality`` (n, m_trained) is what the trained models scored on those prompts
    (observed where the router has their training outcomes, else predicted); ``features``
    are the prompts' (with task posteriors when the router classifies tasks).
    ``represents`` (n,) weighs each prompt by the share of the training distribution it
    stands for (see ``coverage_weights``): informative prompts are not a random sample
    (they over-represent prompts on which models differ), and unweighted means over them
    would exaggerate how far the new model is from its anchors. ``offset_variance`` is the
    prior variance of the offsets (``offset_prior``); None: one pseudo-prompt of shrinkage.
    """
    observed = np.asarray(observed, dtype=np.float64)
    n = observed.shape[0]
    if n == 0:
        raise ValueError(f"{name}: no outcomes to profile from")
    v = np.ones(n) if represents is None else np.asarray(represents, dtype=np.float64)
    v = v * n / v.sum()  # mean 1: shrinkage strengths stay in prompts
    n_eff = float(v.sum() ** 2 / (v**2).sum())
    difference = observed[:, None] - anchor_quality  # (n, m)
    mean_difference = (v @ difference) / n
    variance = np.maximum((v @ (difference - mean_difference) ** 2) / n, _MIN_VARIANCE)
    if offset_variance is None:
        offsets = mean_difference * n / (n + _OFFSET_SHRINKAGE)
    else:  # posterior mean under a N(0, offset_variance) prior
        offsets = mean_difference * offset_variance / (offset_variance + variance / n_eff)
    log_likelihood = -0.5 * n_eff * np.log(variance)
    weights = np.exp(log_likelihood - log_likelihood.max())
    weights /= weights.sum()
    residuals = observed - (anchor_quality + offsets[None, :]) @ weights
    if features.task_probs is not None:
        probs = features.task_probs * v[:, None]
        task_residuals = (probs.T @ residuals) / (probs.sum(axis=0) + _TASK_SHRINKAGE)
        return Profile(name, source, n, weights, offsets, task_residuals=task_residuals)
    return Profile(name, source, n, weights, offsets,
                   embeddings=np.ascontiguousarray(features.embeddings, dtype=np.float32),
                   residuals=residuals.astype(np.float32))


def coverage_weights(answered: np.ndarray, training: np.ndarray) -> np.ndarray:
    """How many training prompts each answered prompt is the nearest answered one to
    (plus one): the share of the training distribution it represents. Both arguments are
    L2-normalised embeddings, (n, d) and (n_train, d)."""
    nearest = np.empty(training.shape[0], dtype=np.int64)
    for start in range(0, training.shape[0], 4096):
        nearest[start:start + 4096] = np.argmax(training[start:start + 4096] @ answered.T,
                                                axis=1)
    return np.bincount(nearest, minlength=answered.shape[0]).astype(float) + 1.0


def select_prompts(embeddings: np.ndarray, n: int, strata: np.ndarray | None = None,
                   seed: int = 0) -> np.ndarray:
    """Indices of ``n`` training prompts that tell the most about a new model.

    With ``strata`` (each training prompt's task), the picks are a stratified sample: each
    task gets its share of ``n`` (largest remainders; every task one at least while ``n``
    allows), so every task residual and level a profile keeps is read from answers on that
    task. Embeddings alone do not give that: a task of templated prompts (winogrande's
    sentences, arc's questions) sits in a tight cluster, one of varied ones (mbpp's code)
    spreads wide, and k-means spends its clusters on the spread: on routerbench 46 of 50
    picks were mbpp prompts, 13% of the training table, and arc-challenge (47%) got 3.

    Within a task (or over all prompts without strata), the picks are the medoids (the
    member nearest the centre) of a seeded k-means with as many clusters: each stands for
    one region, so the few answers cover it the way a stratified sample does, and
    ``coverage_weights`` weighs each back by its region's size. Measured against tilting
    the clusters toward prompts the trained models disagree on (weighting k-means by that
    disagreement, or a disagreement-weighted farthest-point order): plain coverage placed
    new models better (llmrouter, seed 0: gain recovered 0.17 vs 0.02 at n = 50);
    disagreement-rich picks misjudge a model's level, and that error costs more than the
    sharper choice of anchors gains. The picks come largest region first; seeded, so the
    same router selects the same prompts.
    """
    k = min(n, embeddings.shape[0])
    if strata is None:
        picks, sizes = _medoids(embeddings, np.arange(embeddings.shape[0]), k, seed)
    else:
        groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
        picks, sizes = [], []
        for members, share in zip(groups, _allocate(k, [len(g) for g in groups]),
                                  strict=True):
            if share:
                found, counts = _medoids(embeddings, members, share, seed)
                picks += found
                sizes += counts
    order = np.argsort(-np.asarray(sizes), kind="stable")
    return np.asarray(picks, dtype=np.int64)[order]


def _allocate(n: int, sizes: list[int]) -> list[int]:
    """``n`` picks shared out in proportion to ``sizes`` by largest remainders, never more
    than a group holds; while ``n`` covers every group, each gets one at least (from the
    group furthest above its quota)."""
    sizes_array = np.asarray(sizes, dtype=float)
    quota = n * sizes_array / sizes_array.sum()
    shares = np.floor(quota).astype(np.int64)
    for g in np.argsort(-(quota - shares), kind="stable")[:n - int(shares.sum())]:
        shares[g] += 1
    shares = np.minimum(shares, sizes)
    while shares.sum() < n:  # a group held fewer than its share: the rest to the others
        room = np.flatnonzero(shares < sizes)
        shares[room[np.argmax(quota[room] - shares[room])]] += 1
    if n >= len(sizes):
        for g in np.flatnonzero(shares == 0):
            donors = np.flatnonzero(shares > 1)
            shares[donors[np.argmax(shares[donors] - quota[donors])]] -= 1
            shares[g] = 1
    return shares.tolist()


def _medoids(embeddings: np.ndarray, members: np.ndarray, k: int,
             seed: int) -> tuple[list[int], list[int]]:
    """The medoids of a seeded k-means with ``k`` clusters over ``members``' embeddings,
    as indices into ``embeddings``, and the size of each one's cluster."""
    from sklearn.cluster import KMeans  # profile selection only: routing needs numpy alone

    points = embeddings[members]
    kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(points)
    labels = kmeans.labels_
    closeness = np.einsum("nd,nd->n", points, kmeans.cluster_centers_[labels])
    picks, sizes = [], []
    for cluster in range(k):
        inside = np.flatnonzero(labels == cluster)
        if inside.size:
            picks.append(int(members[inside[np.argmax(closeness[inside])]]))
            sizes.append(int(inside.size))
    return picks, sizes


__all__ = ["AddedModels", "Profile", "coverage_weights", "fit_profile", "offset_prior",
           "select_prompts"]
