"""A model as a profile: placed from its answers on a few prompts, with nothing refitted.

A trained router predicts, for any prompt, the quality of each model it was trained on;
those predicted columns are the prompt representation every model shares. An added model
is placed among them as one more draw from the population the trained models come from:
its outcome column is taken to be Gaussian, centred on the trained models' mean, varying
as the trained models vary about that mean, plus a level of its own and per-prompt noise
(``PopulationPrior``). Conditioned on its observed outcomes on whatever prompts it
answered, its expected quality on any prompt is a linear map of the trained models'
qualities there (coefficients that sum to one, and an intercept), so the other models'
answers on the same prompts say how hard those prompts were, and a few answers are not
read as a level on their own. The prior's three variances are fitted on the trained
models themselves: each, left out, is predicted from the others (its marginal
likelihood), so how far a model strays from the rest is measured, not assumed. What the
linear map still misses is kept as residuals per task (read through the router's task
posteriors) or, without a task classifier, per answered prompt (read through an
embedding kernel), shrunk toward zero.

This replaced a Bayesian average over single "anchor" hypotheses (the new model as one
trained model shifted), with each answer weighed by the share of the training
distribution its prompt stands for. On inner splits of routerbench and llmrouter's
training parts (8 seeds, held-out models added from n = 10/25/50/100 selected prompts)
it recovered more of a retrain's gain on average (0.36/0.50/0.51/0.67 against
0.41/0.32/0.47/0.40): one anchor's sample deviation went into the offset one for one, and
the coverage weights halved the effective number of answers.

Predictions are then on the trained models' scale by construction (the same estimator's
outputs, mixed), which is what lets the policy rank an added model against trained ones.
Every estimator family accepts profiles, since a profile only reads the family's
predictions; a router trained on a single model has one anchor, and its profiles are that
model shifted. ``select_prompts`` picks a set that covers the training distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from switchman.estimators.base import clip_unit
from switchman.features import Features

#: Kernel width and shrinkage of the residual read-back (as ``KNNEstimator``'s defaults: a
#: near-duplicate prompt counts fully, a loose match little).
_TEMPERATURE = 0.1
_RESIDUAL_SHRINKAGE = 1.0
#: Prompts the population prior is fitted on at most (seeded): its three variances need
#: no more, and ``profile add`` stays well under a second with 28 trained models.
_PRIOR_PROMPTS = 512
#: Pseudo-prompts of each task residual's shrinkage toward zero. Chosen on inner 70/30
#: splits of routerbench's and llmrouter's training parts (8 seeds, 3 held-out models added
#: from n = 25/50/100 selected prompts; gain recovered, the two datasets' mean): 5 (the task
#: mixture's) 0.61/0.72/0.85, 10 0.68/0.74/0.89, 15 0.70/0.78/0.88, 20 0.69/0.79/0.86; with
#: the residuals dropped 0.54/0.62/0.68. A few answers on a task say less about the new
#: model's own bent there than the mixture's shrinkage assumed.
_TASK_SHRINKAGE = 15.0
_ROWS_PER_BLOCK = 1024  # of AddedModels.predict's products: 48 models, 18 MB at most


@dataclass(frozen=True)
class Profile:
    """One added model: coefficients on the trained models, a level shift, residuals.

    Residuals are kept per task (``task_residuals``, read through the router's task
    posteriors) when the router classifies tasks, else per answered prompt (read through an
    embedding kernel).
    """

    name: str
    source: str  # the outcomes file it was estimated from
    n_prompts: int
    weights: np.ndarray  # (m_trained,), coefficients on the trained models; sum to 1
    offsets: np.ndarray  # (m_trained,), the level shift added to each (all equal)
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
        """The ``top`` trained models it follows most as (model, weight), for ``switchman
        models``."""
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
        return clip_unit(out)


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


@dataclass(frozen=True)
class PopulationPrior:
    """How a model's outcome column varies about the trained models' mean column.

    Covariance over prompts: ``shared`` times the trained models' own covariance (the
    outer product of their deviations from the mean, averaged over models), plus
    ``level`` on every pair (a model's constant shift), plus ``noise`` on the diagonal
    (what no other model's answers tell about its own).
    """

    shared: float
    level: float
    noise: float

    @classmethod
    def fit(cls, training_quality: np.ndarray) -> PopulationPrior:
        """The variances under which each trained model, left out, is most likely given
        the others (on at most ``_PRIOR_PROMPTS`` of the training prompts). With fewer than
        two trained models there is no population to measure: ``DEFAULT_PRIOR``."""
        from scipy.optimize import minimize  # profile add only: routing needs numpy alone

        q = np.asarray(training_quality, dtype=np.float64)
        if q.shape[1] < 2:
            return DEFAULT_PRIOR
        if q.shape[0] > _PRIOR_PROMPTS:
            rows = np.random.default_rng(0).choice(q.shape[0], _PRIOR_PROMPTS, replace=False)
            q = q[np.sort(rows)]
        others = [np.delete(q, j, axis=1) for j in range(q.shape[1])]

        def negative_log_likelihood(log_variances: np.ndarray) -> float:
            prior = cls(*np.exp(log_variances))
            return -sum(prior._log_likelihood(q[:, j], rest)
                        for j, rest in enumerate(others)) / q.size

        start = np.log([DEFAULT_PRIOR.shared, DEFAULT_PRIOR.level, DEFAULT_PRIOR.noise])
        found = minimize(negative_log_likelihood, start, method="L-BFGS-B",
                         bounds=[(-9.0, 3.0)] * 3)
        return cls(*(float(v) for v in np.exp(found.x)))

    def _log_likelihood(self, column: np.ndarray, anchors: np.ndarray) -> float:
        """log N(column | anchors' mean, this covariance), through the Woodbury identity:
        the covariance is the noise times I plus a rank m+1 part."""
        mean = anchors.mean(axis=1)
        spread = np.column_stack([np.sqrt(self.shared / anchors.shape[1])
                                  * (anchors - mean[:, None]),
                                  np.full(anchors.shape[0], np.sqrt(self.level))])
        residual = column - mean
        inner = np.eye(spread.shape[1]) + spread.T @ spread / self.noise
        cholesky = np.linalg.cholesky(inner)
        projected = np.linalg.solve(cholesky, spread.T @ residual) / self.noise
        quadratic = residual @ residual / self.noise - projected @ projected
        log_det = (residual.size * np.log(self.noise)
                   + 2.0 * np.log(np.diag(cholesky)).sum())
        return -0.5 * (quadratic + log_det)


#: Without trained models to measure: a model's level within about 0.1 of theirs, binary
#: answers' noise, their shared variation taken as it is.
DEFAULT_PRIOR = PopulationPrior(shared=1.0, level=0.01, noise=0.15)


def fit_profile(name: str, source: str, observed: np.ndarray, anchor_quality: np.ndarray,
                features: Features, prior: PopulationPrior = DEFAULT_PRIOR) -> Profile:
    """Profile a model from its ``observed`` quality (n,) on n prompts.

    ``anchor_quality`` (n, m_trained) is what the trained models scored on those prompts
    (observed where the router has their training outcomes, else predicted); ``features``
    are the prompts' (with task posteriors when the router classifies tasks). The profile
    is the posterior mean under ``prior``: with ``a = K^-1 (observed - mean)``, K the
    prior's covariance over the answered prompts, the expected quality anywhere is
    ``mean + shared * deviations @ D.T @ a / m + level * sum(a)``, which is linear in the
    trained models' qualities there.
    """
    observed = np.asarray(observed, dtype=np.float64)
    anchors = np.asarray(anchor_quality, dtype=np.float64)
    n, m = anchors.shape
    if n == 0:
        raise ValueError(f"{name}: no outcomes to profile from")
    mean = anchors.mean(axis=1)
    deviations = anchors - mean[:, None]
    covariance = (prior.shared * deviations @ deviations.T / m + prior.level
                  + prior.noise * np.eye(n))
    a = np.linalg.solve(covariance, observed - mean)
    weights = 1.0 / m + prior.shared * (deviations.T @ a) / m  # sums to 1: rows of D sum to 0
    level = prior.level * float(a.sum())
    offsets = np.full(m, level)
    residuals = observed - anchors @ weights - level
    if features.task_probs is not None:
        probs = features.task_probs
        task_residuals = (probs.T @ residuals) / (probs.sum(axis=0) + _TASK_SHRINKAGE)
        return Profile(name, source, n, weights, offsets, task_residuals=task_residuals)
    return Profile(name, source, n, weights, offsets,
                   embeddings=np.ascontiguousarray(features.embeddings, dtype=np.float32),
                   residuals=residuals.astype(np.float32))


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
    one region, so the few answers cover it the way a stratified sample does. Measured
    (with the earlier anchor placement) against tilting the clusters toward prompts the
    trained models disagree on (weighting k-means by that disagreement, or a
    disagreement-weighted farthest-point order): plain coverage placed new models better
    (llmrouter, seed 0: gain recovered 0.17 vs 0.02 at n = 50); disagreement-rich picks
    misjudge a model's level, and that error costs more than the sharper choice of
    anchors gains. The picks come largest region first; seeded, so the
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


__all__ = ["DEFAULT_PRIOR", "AddedModels", "PopulationPrior", "Profile", "fit_profile",
           "select_prompts"]
