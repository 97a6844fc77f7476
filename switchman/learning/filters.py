"""Per-model Bayesian linear regressions that forget slowly and restart on a detected change.

The learner corrects the router with one small regression per model (``residual = x . theta
+ noise``); this module holds those regressions for all models at once, as stacked arrays,
so that a decision scores every model in a few vectorised products.

Two time scales, because drift comes in two kinds:

* **Slow forgetting** for gradual drift and for re-exploration. ``theta`` follows an
  Ornstein-Uhlenbeck process back to the prior N(0, I) (features are whitened by the prior
  scales): per tick the posterior mean shrinks by ``rho`` and the covariance relaxes as
  ``rho^2 P + (1 - rho^2) I``. That has a closed form for any number of ticks, so it is
  applied lazily per model, at its next decision or update. An update is then one
  Sherman-Morrison (Kalman) step, O(d^2); nothing is ever inverted or decomposed.
* **Change detection** for a sudden one (a model that breaks, a price that jumps): a tight
  prior, the right one while the router is right, would take dozens of observations to
  believe it. A two-sided CUSUM raises an alarm after a few consistently surprising
  outcomes: of the standardised residuals (innovations), or of the evidence the caller
  computes from the outcome's own distribution (the learner's log-likelihood ratios of a
  score). The model's regression then restarts from a prior ``reset_scale`` times wider
  and re-learns the observations since the change began, kept in a short ring buffer, so
  the switch happens within a handful of observations.

State is O(models x (d^2 + memory x d)) floats, bounded by the pool size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from switchman.learning.packing import pack, unpack

#: CUSUM statistics per slot: up and down, of the residuals and of the caller's evidence.
_STATISTICS = 4
_ARRAYS = ("mean", "cov", "last", "prior", "cusum", "runs", "memory_x", "memory_r", "seen")


class DriftingFilters:
    """Stacked per-model regressions over ``d`` whitened features; rows are model slots."""

    def __init__(self, d: int, noise: float, halflife: float, slack: float, threshold: float,
                 reset_scale: float, memory: int, evidence_threshold: float = 0.0) -> None:
        """``evidence_threshold``: where the second detector (of the caller's evidence, see
        ``observe``) alarms; 0, or no evidence given, leaves the residuals' alone."""
        self.d = d
        self._noise2 = noise * noise
        self._rho = 0.5 ** (1.0 / halflife)
        self._slack = slack
        self._threshold = threshold
        self._evidence_threshold = evidence_threshold
        #: Each CUSUM statistic's alarm threshold (see ``_restart``), in cusum's column order.
        self._limits = np.array([threshold] * 2 + [evidence_threshold] * 2)
        self._reset_var = reset_scale * reset_scale
        self._memory = memory
        self._ones = np.ones(d)  # row sums as products with it (see ``predict``)
        self.clock = 0.0  # observations so far, of any model
        self.alarms = 0
        self.mean = np.zeros((0, d))  # posterior mean at the slot's last tick
        self.cov = np.zeros((0, d, d))  # posterior covariance then
        self.last = np.zeros(0)  # clock at the slot's last observation
        self.prior = np.zeros(0)  # the slot's prior variance (I times this), what it relaxes to
        # upward and downward CUSUM statistics: of the residuals, then of the evidence
        self.cusum = np.zeros((0, _STATISTICS))
        self.runs = np.zeros((0, _STATISTICS))  # observations since each was last zero
        self.memory_x = np.zeros((0, memory, d))  # ring buffer of recent observations
        self.memory_r = np.zeros((0, memory))
        self.seen = np.zeros(0)  # observations ever made (ring buffer position)

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def add(self, prior: float = 1.0) -> int:
        """A new slot holding its prior alone (covariance ``prior`` times I); its index."""
        d, m = self.d, self._memory
        self.mean = np.concatenate([self.mean, np.zeros((1, d))])
        self.cov = np.concatenate([self.cov, prior * np.eye(d)[None]])
        self.last = np.append(self.last, self.clock)
        self.prior = np.append(self.prior, prior)
        self.cusum = np.concatenate([self.cusum, np.zeros((1, _STATISTICS))])
        self.runs = np.concatenate([self.runs, np.zeros((1, _STATISTICS))])
        self.memory_x = np.concatenate([self.memory_x, np.zeros((1, m, d))])
        self.memory_r = np.concatenate([self.memory_r, np.zeros((1, m))])
        self.seen = np.append(self.seen, 0.0)
        return len(self) - 1

    def predict(self, slots: slice | np.ndarray, x: np.ndarray,
                common: DriftingFilters | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of ``x[i] . theta`` for slot ``slots[i]``, now.

        With ``common`` (a one-slot regression every row shares), the sum of both: the two
        are independent, so means and variances add. Each numpy call costs more than its
        arithmetic at these sizes, so calls are few: row-wise dot products are products
        with a ones vector (``ndarray.dot``, which dispatches faster than ``@``), and the
        relaxation towards the prior (``relaxed`` times I) joins the spread before the one
        row-wise product that gives the variance.
        """
        decay = self._rho ** (self.clock - self.last[slots])
        decay2 = decay * decay
        spread = np.matmul(x[:, None, :], self.cov[slots])[:, 0, :]
        spread *= decay2[:, None]
        shift = (x * self.mean[slots]).dot(self._ones) * decay
        relaxed = (1.0 - decay2) * self.prior[slots]
        if common is not None:
            shared = common._decay(0)
            spread += (shared * shared) * x.dot(common.cov[0])
            shift += shared * x.dot(common.mean[0])
            relaxed += (1.0 - shared * shared) * float(common.prior[0])
        spread += relaxed[:, None] * x
        return shift, (spread * x).dot(self._ones)

    def intercepts(self, slots: slice | np.ndarray) -> np.ndarray:
        """Posterior means of a one-feature regression (``d == 1``) per slot, now."""
        return self._rho ** (self.clock - self.last[slots]) * self.mean[slots, 0]

    def intercept(self, slot: int) -> float:
        """``intercepts`` of one slot, in Python floats."""
        return self._decay(slot) * float(self.mean[slot, 0])

    def mean_now(self, slot: int, x: np.ndarray) -> float:
        """The posterior mean of ``x . theta`` for one slot and one feature row."""
        return self._decay(slot) * float(x.dot(self.mean[slot]))

    def _decay(self, slot: int) -> float:
        """What is left of the slot's posterior mean since its last observation (its
        covariance keeps the square of it)."""
        return self._rho ** (self.clock - float(self.last[slot]))

    def observe(self, slot: int, x: np.ndarray, residual: float,
                evidence: tuple[float, float] | None = None) -> bool:
        """Learn ``residual`` observed at features ``x`` for ``slot``; True on a change alarm.

        ``evidence``: what the observation adds to the second detector's upward and
        downward statistics, where the caller knows the outcome's distribution (log
        likelihood ratios for a small change); the first detector's steps are always the
        standardised residual less the slack (quick on a large change).
        """
        if self.d == 1:
            return self._observe_scalar(slot, float(x[0]), residual)
        decay = self._decay(slot)
        decay2 = decay * decay
        cov, mean = self.cov[slot], self.mean[slot]  # views: updated in place
        cov *= decay2
        cov.reshape(-1)[:: self.d + 1] += (1.0 - decay2) * float(self.prior[slot])  # diagonal
        mean *= decay
        spread = cov.dot(x)
        variance = float(x.dot(spread)) + self._noise2
        predicted = float(x.dot(mean))
        seen = int(self.seen[slot])
        position = seen % self._memory
        self.memory_x[slot, position] = x
        self.memory_r[slot, position] = residual
        self.seen[slot] = seen + 1
        alarm = self._track(slot, (residual - predicted) / math.sqrt(variance), evidence)
        if alarm:
            self.mean[slot], self.cov[slot] = self._restart(slot)
        else:  # one Kalman step, reusing the innovation's products
            gain = spread / variance
            mean += gain * (residual - predicted)
            cov -= gain[:, None] * spread
        self.last[slot] = self.clock
        self.clock += 1.0
        return alarm

    def _observe_scalar(self, slot: int, x: float, residual: float) -> bool:
        """``observe`` for one feature, in Python floats (a tenth of numpy's call overhead)."""
        decay = self._decay(slot)
        decay2 = decay * decay
        cov = decay2 * float(self.cov[slot, 0, 0]) + (1.0 - decay2) * float(self.prior[slot])
        mean = decay * float(self.mean[slot, 0])
        spread = cov * x
        variance = x * spread + self._noise2
        predicted = x * mean
        seen = int(self.seen[slot])
        self.memory_x[slot, seen % self._memory, 0] = x
        self.memory_r[slot, seen % self._memory] = residual
        self.seen[slot] = seen + 1
        alarm = self._track(slot, (residual - predicted) / math.sqrt(variance))
        if alarm:
            self.mean[slot], self.cov[slot] = self._restart(slot)
        else:
            gain = spread / variance
            self.mean[slot, 0] = mean + gain * (residual - predicted)
            self.cov[slot, 0, 0] = cov - gain * spread
        self.last[slot] = self.clock
        self.clock += 1.0
        return alarm

    def _track(self, slot: int, innovation: float,
               evidence: tuple[float, float] | None = None) -> bool:
        """Two two-sided CUSUMs, of the standardised residuals and of the caller's evidence
        (Python floats); True when either passes its threshold."""
        alarm = False
        if self._threshold > 0:
            alarm = self._cusums(slot, 0, (innovation - self._slack, -innovation - self._slack),
                                 self._threshold)
        if evidence is not None and self._evidence_threshold > 0:
            alarm = self._cusums(slot, 2, evidence, self._evidence_threshold) or alarm
        return alarm

    def _cusums(self, slot: int, first: int, steps: tuple[float, float],
                threshold: float) -> bool:
        """Add ``steps`` to the upward and downward statistics from column ``first`` on;
        True when either passes ``threshold``."""
        alarm = False
        cusum, runs = self.cusum[slot], self.runs[slot]
        for column, step in enumerate(steps, start=first):
            value = max(0.0, float(cusum[column]) + step)
            cusum[column] = value
            runs[column] = runs[column] + 1.0 if value > 0 else 0.0
            alarm = alarm or value > threshold
        return alarm

    def _restart(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """A wide prior, then the observations since the alarming statistic left zero."""
        self.alarms += 1
        limits = self._limits  # the statistic furthest past its own threshold alarmed
        alarming = int(np.argmax(np.where(limits > 0, self.cusum[slot] / np.maximum(limits, 1e-12),
                                          -np.inf)))
        count = int(min(self.runs[slot, alarming], self._memory, self.seen[slot]))
        mean = np.zeros(self.d)
        # the router was wrong about this model: its prior stays this wide from now on, so
        # the model's posterior relaxes to it instead of back to trusting the router
        self.prior[slot] = max(self._reset_var, float(self.prior[slot]))
        cov = np.eye(self.d) * self.prior[slot]
        end = int(self.seen[slot])
        for index in range(end - count, end):
            position = index % self._memory
            mean, cov = self._kalman(mean, cov, self.memory_x[slot, position],
                                     float(self.memory_r[slot, position]))
        self.cusum[slot] = 0.0
        self.runs[slot] = 0.0
        return mean, cov

    def _kalman(self, mean: np.ndarray, cov: np.ndarray, x: np.ndarray,
                residual: float) -> tuple[np.ndarray, np.ndarray]:
        spread = cov @ x
        gain = spread / (float(x @ spread) + self._noise2)
        return mean + gain * (residual - float(x @ mean)), cov - np.outer(gain, spread)

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {key: pack(getattr(self, key)) for key in _ARRAYS}
        state.update(clock=self.clock, alarms=self.alarms)
        return state

    def load_state(self, state: dict[str, Any]) -> DriftingFilters:
        """Restore ``to_state``'s data into this (empty) instance; checks every shape."""
        n = len(unpack(state["last"], "last"))
        d, m = self.d, self._memory
        shapes = {"mean": (n, d), "cov": (n, d, d), "last": (n,), "prior": (n,),
                  "cusum": (n, _STATISTICS), "runs": (n, _STATISTICS), "memory_x": (n, m, d),
                  "memory_r": (n, m), "seen": (n,)}
        for key in _ARRAYS:
            values = unpack(state[key], key).reshape(-1)
            if key in ("cusum", "runs") and values.size == 2 * n:  # saved with one detector
                values = np.hstack([values.reshape(n, 2), np.zeros((n, 2))]).reshape(-1)
            if values.size != math.prod(shapes[key]):
                raise ValueError(f"learner state {key!r} does not fit {shapes[key]}")
            setattr(self, key, values.reshape(shapes[key]).copy())
        self.clock = float(state["clock"])
        self.alarms = int(state["alarms"])
        return self
