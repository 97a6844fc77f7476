"""Predict each model's dollar cost for a prompt before any model has seen it.

cost = input tokens x input price + expected output tokens x output price. Input tokens
follow from the prompt's length; output tokens are model- and prompt-dependent (a coder
model writing a function vs. a one-letter answer), so they are regressed on the prompt's
features. Prices come from a price table where one is given, otherwise they are recovered
from the training outcomes by non-negative least squares on the observed token counts.

When the training table labels tasks, a second predictor is kept: P(task | prompt) (the
router's, in ``Features.task_probs``) times each task's mean observed cost per model. It
ignores what is particular to the prompt, and on some data that routes better: per-prompt
cost differences that the quality estimate does not account for (a long prompt is also a
hard one) can pull the policy the wrong way.
Which of the two the router uses (``mode_``) is chosen by out-of-fold routing quality in
``Router.fit_features``.

Prices are the one part that is not learned: the training table teaches token counts, and
dollars follow from whatever price list is in force. ``reprice`` swaps a model's prices
(``switchman route --prices``, the gateway's configured pool prices) and ``append`` adds the
column of a model known only from a profile's few outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from switchman.features import Features
from switchman.features.task_classifier import task_totals

#: The predictors ``mode_`` can name.
MODES = ("prompt", "task")


class CostModel:
    #: (n_models, 2) mean training input and output tokens, which ``reprice`` weighs the
    #: per-task costs by; None in routers saved before it was kept.
    mean_tokens_: np.ndarray | None = None

    def __init__(self, alpha: float = 10.0) -> None:
        self.alpha = alpha

    def fit(
        self,
        features: Features,
        models: list[str],
        input_tokens: np.ndarray,
        output_tokens: np.ndarray,
        cost: np.ndarray,
        prices: Mapping[str, tuple[float, float]] | None = None,
    ) -> CostModel:
        """Learn tokens-per-character, per-model prices and output lengths.

        ``input_tokens`` is (n,), ``output_tokens`` and ``cost`` are (n, n_models).
        """
        # Imported here: fitting needs scipy/sklearn, serving a fitted model only numpy.
        from scipy.optimize import nnls
        from sklearn.linear_model import Ridge

        chars = np.expm1(features.log_chars)
        design = np.column_stack([chars, np.ones_like(chars)])
        self.tokens_per_char_, self.token_offset_ = nnls(design, input_tokens.astype(float))[0]
        self.price_per_token_ = np.zeros((len(models), 2))  # (input, output) USD per token
        for j, model in enumerate(models):
            if prices is not None and model in prices:
                self.price_per_token_[j] = np.asarray(prices[model]) / 1e6
            else:
                tokens = np.column_stack([input_tokens, output_tokens[:, j]]).astype(float)
                self.price_per_token_[j] = nnls(tokens, cost[:, j])[0]
        ridge = Ridge(alpha=self.alpha).fit(features.dense(), np.log1p(output_tokens))
        self.output_coef_ = ridge.coef_.T.astype(np.float32)  # (d + 1, n_models)
        self.output_intercept_ = np.asarray(ridge.intercept_, dtype=np.float32)
        # exp of a mean log under-estimates the mean: rescale so training means are matched.
        fitted = np.expm1(features.dense() @ self.output_coef_ + self.output_intercept_)
        self.output_scale_ = output_tokens.mean(axis=0) / np.maximum(fitted.mean(axis=0), 1e-9)
        self._fit_task_costs(features, cost)
        self.mean_tokens_ = np.column_stack([np.full(len(models), input_tokens.mean()),
                                             output_tokens.mean(axis=0)])
        self.mode_ = "prompt"
        return self

    def append(self, features: Features, input_tokens: np.ndarray, output_tokens: np.ndarray,
               cost: np.ndarray, price: tuple[float, float] | None = None) -> CostModel:
        """Add one model's column from its tokens and dollars (n,) on ``features``' prompts.

        Too few prompts to regress output length on 385 features: the new model gets the
        trained models' typical length curve (their mean coefficients), shifted to its own
        observed mean length. Its per-task costs are the trained models' typical per-task
        shape scaled to its observed mean cost. ``price`` (USD per Mtok in, out) wins over
        prices recovered from its dollars.
        """
        from scipy.optimize import nnls

        if price is not None:
            per_token = np.asarray(price, dtype=float) / 1e6
        else:
            tokens = np.column_stack([input_tokens, output_tokens]).astype(float)
            per_token = nnls(tokens, cost.astype(float))[0]
        coef = self.output_coef_.mean(axis=1, keepdims=True)
        typical = features.dense() @ coef[:, 0] + float(self.output_intercept_.mean())
        shift = float(np.log1p(output_tokens).mean() - typical.mean())
        intercept = float(self.output_intercept_.mean()) + shift
        fitted = np.maximum(np.expm1(typical + shift), 1.0)
        column = {"price_per_token": per_token, "output_coef": coef[:, 0],
                  "output_intercept": np.array(intercept),
                  "output_scale": np.array(output_tokens.mean() / max(float(fitted.mean()),
                                                                      1e-9))}
        if self.mean_tokens_ is not None:
            column["mean_tokens"] = np.array([input_tokens.mean(), output_tokens.mean()])
        if self.task_cost_ is not None:
            shape = (self.task_cost_ / np.maximum(self.task_cost_.mean(axis=0), 1e-15)).mean(
                axis=1)
            typical_cost = (features.task_probs @ shape if features.task_probs is not None
                            else np.full(len(features), shape.mean()))
            column["task_cost"] = cost.mean() / max(float(typical_cost.mean()), 1e-15) * shape
        return self.insert_column(column)

    def column(self, j: int) -> dict[str, np.ndarray]:
        """Model ``j``'s part of the state, all a profile file needs to bring its costs
        into another copy of the same router (see ``insert_column``)."""
        column = {"price_per_token": self.price_per_token_[j],
                  "output_coef": self.output_coef_[:, j],
                  "output_intercept": np.array(self.output_intercept_[j]),
                  "output_scale": np.array(self.output_scale_[j])}
        if self.mean_tokens_ is not None:
            column["mean_tokens"] = self.mean_tokens_[j]
        if self.task_cost_ is not None:
            column["task_cost"] = self.task_cost_[:, j]
        return column

    def insert_column(self, column: Mapping[str, np.ndarray]) -> CostModel:
        """Append one model's column as ``column`` gives it; raises ``ValueError`` when it
        does not fit this cost model (other features, per-task costs or not)."""
        coef = np.asarray(column["output_coef"], dtype=np.float32)
        if coef.shape != (self.output_coef_.shape[0],):
            raise ValueError(f"its output-length coefficients have shape {coef.shape}, this "
                             f"router's {(self.output_coef_.shape[0],)}")
        for key, have in (("mean_tokens", self.mean_tokens_), ("task_cost", self.task_cost_)):
            if (key in column) != (have is not None):
                raise ValueError(f"it {'has' if key in column else 'lacks'} {key}, which "
                                 f"this router {'lacks' if have is None else 'has'}")
        if self.task_cost_ is not None and np.shape(column["task_cost"]) != (
                self.task_cost_.shape[0],):
            raise ValueError(f"it has costs for {np.size(column['task_cost'])} tasks, this "
                             f"router for {self.task_cost_.shape[0]}")
        self.price_per_token_ = np.vstack([self.price_per_token_,
                                           np.asarray(column["price_per_token"], dtype=float)])
        self.output_coef_ = np.hstack([self.output_coef_, coef[:, None]])
        self.output_intercept_ = np.append(self.output_intercept_,
                                           np.float32(column["output_intercept"]))
        self.output_scale_ = np.append(self.output_scale_, float(column["output_scale"]))
        if self.mean_tokens_ is not None:
            self.mean_tokens_ = np.vstack([self.mean_tokens_, column["mean_tokens"]])
        if self.task_cost_ is not None:
            self.task_cost_ = np.column_stack([self.task_cost_, column["task_cost"]])
        return self

    def drop(self, column: int) -> CostModel:
        """Remove one model's column (a profile replaced or removed)."""
        self.price_per_token_ = np.delete(self.price_per_token_, column, axis=0)
        self.output_coef_ = np.delete(self.output_coef_, column, axis=1)
        self.output_intercept_ = np.delete(self.output_intercept_, column)
        self.output_scale_ = np.delete(self.output_scale_, column)
        if self.mean_tokens_ is not None:
            self.mean_tokens_ = np.delete(self.mean_tokens_, column, axis=0)
        if self.task_cost_ is not None:
            self.task_cost_ = np.delete(self.task_cost_, column, axis=1)
        return self

    def reprice(self, prices: Mapping[int, tuple[float, float]]) -> CostModel:
        """Decide on other prices: {column: (USD per Mtok in, out)}.

        The per-prompt predictor multiplies predicted tokens by the new prices. The per-task
        mean costs are dollars at the old prices, so each column is rescaled by what the
        model's mean training tokens cost at the new prices over the old (routers saved
        before the mean tokens were kept: equal input and output tokens are assumed).
        """
        new = self.price_per_token_.copy()
        for column, price in prices.items():
            new[column] = np.asarray(price, dtype=float) / 1e6
        if self.task_cost_ is not None:
            tokens = self.mean_tokens_ if self.mean_tokens_ is not None else np.ones_like(new)
            old_cost = (tokens * self.price_per_token_).sum(axis=1)
            new_cost = (tokens * new).sum(axis=1)
            ratio = np.where(old_cost > 0, new_cost / np.maximum(old_cost, 1e-300), 1.0)
            self.task_cost_ = self.task_cost_ * ratio[None, :]
        self.price_per_token_ = new
        return self

    def _fit_task_costs(self, features: Features, cost: np.ndarray) -> None:
        """Per-task mean costs, and their predictions for the (out-of-fold) training posteriors."""
        self.task_cost_: np.ndarray | None = None
        self.oof_task_cost_: np.ndarray | None = None  # training only, never saved
        if features.task_ids is None or features.task_probs is None:
            return
        sums, counts = task_totals(cost, features.task_ids, features.task_probs.shape[1])
        self.task_cost_ = sums / np.maximum(counts, 1.0)[:, None]
        self.oof_task_cost_ = features.task_probs @ self.task_cost_

    def input_tokens(self, features: Features) -> np.ndarray:
        return self.tokens_per_char_ * np.expm1(features.log_chars) + self.token_offset_

    def output_tokens(self, features: Features) -> np.ndarray:
        log_tokens = features.dense() @ self.output_coef_ + self.output_intercept_
        return np.maximum(np.expm1(log_tokens), 1.0) * self.output_scale_

    def per_prompt(self, features: Features) -> np.ndarray:
        """Input tokens x input price + expected output tokens x output price."""
        tin = self.input_tokens(features)[:, None]
        tout = self.output_tokens(features)
        return tin * self.price_per_token_[:, 0] + tout * self.price_per_token_[:, 1]

    def task_mixture(self, features: Features) -> np.ndarray:
        """P(task | prompt) x each task's mean cost (needs task labels at fit time)."""
        if self.task_cost_ is None:
            raise ValueError("no task labels were given at fit time")
        if features.task_probs is None:
            raise ValueError("the task-mixture cost needs task posteriors (Features.task_probs)")
        return features.task_probs @ self.task_cost_

    def training_costs(self, features: Features) -> dict[str, np.ndarray]:
        """Each predictor's costs for the training prompts, by mode (what the router chooses
        among): the task mixture's from the prompts' out-of-fold task posteriors."""
        costs = {"prompt": self.per_prompt(features)}
        if self.oof_task_cost_ is not None:
            costs["task"] = self.oof_task_cost_
        return costs

    def predict(self, features: Features) -> np.ndarray:
        """Expected dollars (n_prompts, n_models), by the chosen ``mode_``."""
        if self.mode_ == "task":
            return self.task_mixture(features)
        return self.per_prompt(features)

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "token_fit": np.array([self.tokens_per_char_, self.token_offset_]),
            "price_per_token": self.price_per_token_,
            "output_coef": self.output_coef_,
            "output_intercept": self.output_intercept_,
            "output_scale": self.output_scale_,
            "mode": np.array(MODES.index(self.mode_)),
        }
        if self.mean_tokens_ is not None:
            arrays["mean_tokens"] = self.mean_tokens_
        if self.task_cost_ is not None:
            arrays["task_cost"] = self.task_cost_
        return arrays

    def load_state(self, arrays: Mapping[str, np.ndarray]) -> CostModel:
        self.tokens_per_char_, self.token_offset_ = (float(v) for v in arrays["token_fit"])
        self.price_per_token_ = arrays["price_per_token"]
        self.output_coef_ = arrays["output_coef"]
        self.output_intercept_ = arrays["output_intercept"]
        self.output_scale_ = arrays["output_scale"]
        self.mode_ = MODES[int(arrays["mode"])]
        self.task_cost_ = arrays.get("task_cost")
        self.mean_tokens_ = arrays.get("mean_tokens")  # absent in routers before profiles
        if self.mode_ == "task" and self.task_cost_ is None:
            raise ValueError("cost mode 'task' without per-task costs")
        return self
