"""Before each upstream call: hold the most it can cost against the budgets covering it.

The worst case counts the most tokens the prompt can be, one per UTF-8 byte of its text
(no tokenizer makes more), plus ``TEMPLATE_TOKENS`` for what the upstream's chat template
adds (role markers, a default system prompt: llama.cpp's SmolLM2 template bills a 7-byte
"Say hi." as 33 prompt tokens), and the longest answer the call allows: the request's
``max_tokens``, else the model's ``max_output_tokens``, else what is left of its context
window. Twice the characters / 4 estimate, held before, was no bound: seven such requests
at once held $0.026 each against a $0.20 budget, were billed $0.049 each, and spent $0.33.
A model whose worst case does not fit is passed over (a cheaper one of the plan may fit);
the measured cost replaces the hold when the request settles.
"""

from __future__ import annotations

import logging
import time

from switchman.config.budgets import BudgetConfig
from switchman.gateway.schema import ChatRequest
from switchman.ledger import BudgetExhausted, BudgetLedger, Reservation
from switchman.pool import Model
from switchman.state import StoreUnavailable

logger = logging.getLogger(__name__)


class BudgetRefusal(Exception):
    """A call that no budget covering it can pay for (or whose ledger is unreachable)."""

    def __init__(self, kind: str, message: str, retry_after: float,
                 budgets: list[BudgetConfig]) -> None:
        super().__init__(message)
        self.kind, self.message, self.retry_after, self.budgets = (kind, message, retry_after,
                                                                   budgets)


#: Prompt tokens a chat template may add to the messages' own (generous: templates add a
#: few per message, which the bound counts already, and some a short system prompt).
TEMPLATE_TOKENS = 64


def worst_case_cost(model: Model, req: ChatRequest) -> float:
    """Dollars the call can cost at most."""
    out = req.max_tokens or model.max_output_tokens \
        or max(1, model.context_window - req.prompt_tokens)
    return model.cost_usd(req.prompt_tokens_max + TEMPLATE_TOKENS, out)


class BudgetGate:
    """Reservations for the executor; with no budgets configured it does nothing."""

    def __init__(self, ledger: BudgetLedger, fail_closed: bool) -> None:
        self.ledger = ledger
        self.fail_closed = fail_closed

    def hold(self, budgets: list[BudgetConfig], model: Model,
             req: ChatRequest) -> list[Reservation]:
        """Reserve ``model``'s worst case against ``budgets``; raises :class:`BudgetRefusal`."""
        if not budgets:
            return []
        amount = worst_case_cost(model, req)
        try:
            return self.ledger.reserve(budgets, amount)
        except BudgetExhausted as exc:
            wait = 3600.0 if exc.resets_at is None else max(1.0, exc.resets_at - time.time())
            raise BudgetRefusal("budget_exceeded", f"{exc} (worst case of this call: "
                                f"${amount:.6f})", wait, [exc.budget]) from None
        except StoreUnavailable as exc:
            if self.fail_closed:
                raise BudgetRefusal("budget_store_unavailable", "the budget ledger is "
                                    f"unreachable ({exc}); budgets fail closed", 5.0,
                                    budgets) from None
            logger.warning("budget ledger unreachable (%s): call not metered", exc)
            return []

    def release(self, held: list[Reservation]) -> None:
        """Give back what a call that did not happen (or failed) held."""
        if held:
            try:
                self.ledger.release(held)
            except StoreUnavailable as exc:
                logger.warning("budget ledger unreachable (%s): a hold lapses unreleased", exc)
