"""Budget pacing: raise the cost weight so a budget lasts its period at the best quality it buys.

Choosing per request ``argmax quality - w * cost`` with one well-chosen ``w`` is the
Lagrangian solution of "most quality for at most B dollars" (a multi-choice knapsack), and
``w`` is the budget constraint's dual price. The right price depends on prompts not seen yet,
so :class:`BudgetPacer` learns it online by dual descent: after each decision it compares
the decision's expected cost with the spend rate the rest of the budget allows, ``(budget -
spent) / requests left``, and moves ``log w`` by ``step_size`` times the relative excess.
Overspending raises ``w`` (cheaper models win), underspending lowers it; because the target
rate is recomputed from what is actually left, early mistakes are paid back over the rest of
the period instead of accumulating. Pacing plans on *expected* costs (the decision's); the
caller's spend is measured.

Pacing is steering, not enforcement: :meth:`BudgetPacer.affordable` is the hard rule, a
model whose worst-case cost would take spend past the budget is not eligible, so a request
goes to a cheaper model (or, with none left, is refused) and spend never exceeds the budget.
Spend accounting (the ledger: reserve before a call, settle after) is deliberately not
here: the pacer takes ``spent_usd`` as an argument, so the gateway's ledger, shared between
replicas through the state store, and the replay's running sum feed the same code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Measured-over-expected spend: prior weight (in requests) and per-request decay (half
#: weight after ~200 requests).
_PRIOR_SPEND = 5.0
_RATIO_DECAY = 0.5 ** (1 / 200)
#: Largest relative excess one decision may push the dual by (one outlier cannot swing it).
_MAX_EXCESS = 10.0


class BudgetPacer:
    """Online pacing of the cost weight for one budget.

    ``floor_weight`` is the caller's own cost weight: pacing only ever raises it (a budget
    caps spend, it never makes a caller pay more than they would choose to). ``remaining``
    in the methods below is the number of requests left in the period, counting the
    current one: known for a replay, ``seconds left x recent request rate`` for a gateway.

    With each request's estimates recorded (``record_spend(..., quality=, cost=)``), the
    weight is *solved* rather than stepped: the smallest weight at which the recent
    ``window`` requests would have been expected to spend the target rate, re-solved every
    ``resolve_every`` requests (a bisection over the window, ~0.3 ms). Without estimates the
    dual takes a multiplicative step per request.
    """

    def __init__(self, budget_usd: float, floor_weight: float = 0.0,
                 initial_weight: float | None = None, step_size: float = 0.05,
                 window: int = 256, resolve_every: int = 10) -> None:
        if not budget_usd > 0:
            raise ValueError(f"budget_usd must be > 0, got {budget_usd}")
        if not floor_weight >= 0 or not step_size > 0 or window < 1 or resolve_every < 1:
            raise ValueError("floor_weight must be >= 0, step_size > 0, window and "
                             "resolve_every >= 1")
        self.budget_usd = budget_usd
        self.floor_weight = floor_weight
        self.initial_weight = initial_weight
        self.step_size = step_size
        self.window = window
        self.resolve_every = resolve_every
        self.log_weight: float | None = None
        self.records = 0
        # measured / expected spend (what a biased cost estimate is corrected by)
        self._actual = 0.0
        self._expected = 0.0
        self._last: tuple[float, float] | None = None  # (spent, expected) at the last record
        self._quality: np.ndarray | None = None  # ring buffers of recent estimates
        self._cost: np.ndarray | None = None
        self._eligible: np.ndarray | None = None

    def _target(self, spent_usd: float, remaining: float) -> float:
        """Dollars per request the rest of the budget allows."""
        return max(self.budget_usd - spent_usd, 0.0) / max(remaining, 1.0)

    def _start(self, target: float) -> None:
        """The dual's first value: the given one, else one that weighs a quality point as
        1000 requests' worth of budget (small: pacing raises it within a few requests)."""
        start = self.initial_weight if self.initial_weight else 1e-3 / max(target, 1e-12)
        self.log_weight = math.log(max(start, 1e-300))

    def cost_weight_for(self, spent_usd: float, remaining: float) -> float:
        """The cost weight for the next request, given what is spent and what is left."""
        if self.log_weight is None:
            self._start(self._target(spent_usd, remaining))
        return max(self.floor_weight, math.exp(self.log_weight))

    def record_spend(self, expected_cost: float, spent_usd: float, remaining: float,
                     quality: np.ndarray | None = None, cost: np.ndarray | None = None,
                     eligible: np.ndarray | None = None) -> None:
        """After a decision: ``expected_cost`` of the chosen model (what pacing plans with),
        ``spent_usd`` before that request, ``remaining`` requests counting it; optionally
        the request's per-model expected ``quality`` and ``cost`` and its ``eligible`` mask,
        which let the pacer solve for the weight on recent traffic."""
        target = self._target(spent_usd, remaining)
        if self.log_weight is None:
            self._start(target)
        self.records += 1
        self._calibrate(spent_usd, expected_cost)
        if quality is not None and cost is not None:
            self._remember(quality, cost, eligible)
            if self.records <= 20 or self.records % self.resolve_every == 0:
                self._solve(target)
            return
        # nothing left: the hard rule refuses, and the price stays high
        excess = (_MAX_EXCESS if target <= 0
                  else min(expected_cost * self.cost_ratio / target - 1.0, _MAX_EXCESS))
        self.log_weight += self.step_size * excess

    @property
    def cost_ratio(self) -> float:
        """Measured over expected spend lately (1 until there is evidence): pacing plans
        with expected costs times this, so a cost model that under-rates every call does
        not run the budget out early."""
        return (self._actual + _PRIOR_SPEND) / (self._expected + _PRIOR_SPEND)

    def _calibrate(self, spent_usd: float, expected_cost: float) -> None:
        if self._last is not None:
            last_spent, last_expected = self._last
            actual = max(spent_usd - last_spent, 0.0)
            if last_expected > 0:  # compared in units of the expected cost: scale-free
                self._actual = _RATIO_DECAY * self._actual + actual / last_expected
                self._expected = _RATIO_DECAY * self._expected + 1.0
        self._last = (spent_usd, expected_cost)

    def _remember(self, quality: np.ndarray, cost: np.ndarray,
                  eligible: np.ndarray | None) -> None:
        quality = np.asarray(quality, dtype=np.float64)
        if self._quality is None or self._quality.shape[1] != quality.shape[0]:
            shape = (self.window, quality.shape[0])
            self._quality, self._cost = np.zeros(shape), np.zeros(shape)
            self._eligible = np.zeros(shape, dtype=bool)
            self.records = 1
        row = (self.records - 1) % self.window
        self._quality[row] = quality
        self._cost[row] = cost
        self._eligible[row] = True if eligible is None else eligible

    def _solve(self, target: float) -> None:
        """The smallest weight whose expected spend on the window is at most ``target``."""
        n = min(self.records, self.window)
        quality, cost, ratio = self._quality[:n], self._cost[:n], self.cost_ratio
        penalty = np.where(self._eligible[:n], 0.0, np.inf)
        rows = np.arange(n)

        def spend(log_weight: float) -> float:
            utility = quality - math.exp(log_weight) * cost - penalty
            # decisions weigh the expected costs; the measured spend is those times ratio
            return ratio * float(cost[rows, np.argmax(utility, axis=1)].mean())

        scale = math.log(1.0 / max(target, 1e-12))  # w ~ 1 / (dollars per request)
        low, high = scale - 12.0, scale + 12.0
        if spend(high) > target:  # even the cheapest choices exceed it: as high as it goes
            self.log_weight = high
            return
        for _ in range(30):
            middle = (low + high) / 2
            if spend(middle) > target:
                low = middle
            else:
                high = middle
        self.log_weight = high

    def affordable(self, worst_case_costs: np.ndarray, spent_usd: float,
                   reserve_usd: float = 0.0) -> np.ndarray:
        """Which models the budget still allows: spent + worst-case cost <= budget.

        ``reserve_usd`` is kept back for the requests still to come (say, the rest of the
        period at the cheapest model's expected cost): only the models whose worst case is
        the lowest may spend into it, so the budget lasts instead of running dry early.
        """
        worst = np.asarray(worst_case_costs, dtype=np.float64)
        fits = spent_usd + worst <= self.budget_usd
        if reserve_usd > 0 and fits.any():
            cheapest = worst[fits].min()
            fits &= (worst <= cheapest) | (spent_usd + worst + reserve_usd <= self.budget_usd)
        return fits

    def to_state(self) -> dict[str, Any]:
        """The pacing state as JSON-like data (the window of estimates is not kept: it
        refills within ``resolve_every`` requests)."""
        return {"budget_usd": self.budget_usd, "floor_weight": self.floor_weight,
                "initial_weight": self.initial_weight, "step_size": self.step_size,
                "window": self.window, "resolve_every": self.resolve_every,
                "log_weight": self.log_weight}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BudgetPacer:
        pacer = cls(float(state["budget_usd"]), float(state["floor_weight"]),
                    state["initial_weight"], float(state["step_size"]), int(state["window"]),
                    int(state["resolve_every"]))
        pacer.log_weight = state["log_weight"]
        return pacer


class CostBound:
    """Worst-case cost of a call when its exact maximum is unknown.

    The gateway knows a call's maximum (prompt tokens plus ``max_tokens`` at the model's
    prices) and passes that to :meth:`BudgetPacer.affordable`. A replay only has the
    router's expected cost, so it bounds a call by ``factor`` times that, where ``factor``
    starts at ``prior_factor`` and grows to ``margin`` times the largest observed
    actual-to-expected ratio of the model (RouterBench's measured costs: at most 8.6x the
    router's estimate, 99th percentile 1.7x).
    """

    def __init__(self, n_models: int, prior_factor: float = 4.0, margin: float = 1.5) -> None:
        self.factor = np.full(n_models, prior_factor)
        self.margin = margin

    def __call__(self, expected_costs: np.ndarray) -> np.ndarray:
        return np.asarray(expected_costs, dtype=np.float64) * self.factor

    def observe(self, column: int, expected_cost: float, actual_cost: float) -> None:
        if expected_cost > 0:
            ratio = self.margin * actual_cost / expected_cost
            self.factor[column] = max(self.factor[column], ratio)
