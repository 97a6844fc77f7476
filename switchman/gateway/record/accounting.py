"""Dollars: from the upstream's token usage and the pool's prices, summed from the log.

Upstream ``usage`` is the truth when present; streams from servers that send none (llama.cpp,
some vLLM versions) are estimated from text length, and the log says which was used
(``cost_source``) so spend reports can tell billed figures from estimates.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchman.gateway.schema import CHARS_PER_TOKEN
from switchman.pool import Model


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    source: str  # "usage" (reported upstream) or "estimate"


def usage_of(reported: Any, prompt_estimate: int, completion_chars: int) -> Usage:
    """Reported usage if the upstream sent a usable one, else an estimate from text."""
    if isinstance(reported, dict):
        prompt, completion = reported.get("prompt_tokens"), reported.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return Usage(prompt, completion, "usage")
    return Usage(prompt_estimate, int(completion_chars / CHARS_PER_TOKEN) + 1, "estimate")


def cost_of(model: Model, usage: Usage) -> float:
    return model.cost_usd(usage.prompt_tokens, usage.completion_tokens)


_GROUPS = {"model": "model", "router": "COALESCE(router, '(pinned)')",
           "api_key": "COALESCE(api_key_id, '(none)')"}


def spend(path: Path, since: float | None = None) -> dict[str, list[dict[str, Any]]]:
    """Requests, tokens and dollars per model, per router and per API key (hash)."""
    if not path.exists():
        raise FileNotFoundError(f"no decision log at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        report: dict[str, list[dict[str, Any]]] = {}
        where, args = "WHERE model IS NOT NULL", []
        if since is not None:
            where += " AND ts >= ?"
            args.append(since)
        for name, expr in _GROUPS.items():
            rows = conn.execute(
                f"SELECT {expr} AS k, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
                f"SUM(cost_usd), SUM(cost_source = 'estimate') FROM decisions {where} "
                "GROUP BY k ORDER BY SUM(cost_usd) DESC, k", args).fetchall()
            report[name] = [
                {"key": k, "requests": n, "prompt_tokens": p or 0, "completion_tokens": c or 0,
                 "cost_usd": usd or 0.0, "estimated": est or 0}
                for k, n, p, c, usd, est in rows]
        return report
    finally:
        conn.close()


def logged_spend(path: Path, since: float, api_key_ids: list[str], routers: list[str]) -> float:
    """Dollars the decision log holds since ``since`` for these keys, or these routers, or
    (both empty) for everything: what a budget spent before a restart."""
    if not path.exists():
        return 0.0
    where, args = ["ts >= ?", "model IS NOT NULL"], [since]
    for column, values in (("api_key_id", api_key_ids), ("router", routers)):
        if values:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        found = conn.execute(f"SELECT SUM(cost_usd) FROM decisions WHERE {' AND '.join(where)}",
                             args).fetchone()[0]
    finally:
        conn.close()
    return float(found or 0.0)


def format_spend(report: dict[str, list[dict[str, Any]]]) -> str:
    """Plain-text tables, one per grouping, with a total line."""
    lines: list[str] = []
    for group, rows in report.items():
        width = max([len(group)] + [len(str(r["key"])) for r in rows])
        lines.append(f"{group:<{width}}  {'requests':>8}  {'prompt_tok':>10}  "
                     f"{'compl_tok':>10}  {'cost_usd':>12}  estimated")
        for r in rows:
            lines.append(f"{r['key']!s:<{width}}  {r['requests']:>8}  {r['prompt_tokens']:>10}  "
                         f"{r['completion_tokens']:>10}  {r['cost_usd']:>12.6f}  "
                         f"{r['estimated']}")
        total = sum(r["cost_usd"] for r in rows)
        lines.append(f"{'total':<{width}}  {sum(r['requests'] for r in rows):>8}  "
                     f"{'':>10}  {'':>10}  {total:>12.6f}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
