"""Microseconds per routing decision inside the gateway (no network): parse the request,
key the conversation, score, apply the policy. This is the part of the added latency that
switchman's own code controls; the rest is the HTTP server and client.

    .venv/bin/python benchmarks/gateway_decision.py [--models 8] [--turns 6] [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from switchman.config import PoolModel
from switchman.gateway.context import RequestContext
from switchman.gateway.route.routing import RouterEntry, RoutingTable
from switchman.gateway.route.scoring import PriorScorer
from switchman.gateway.route.sticky import ConversationMemory
from switchman.gateway.schema import parse_chat_request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--turns", type=int, default=6, help="user/assistant turn pairs")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()

    pool = [PoolModel(name=f"m{i}", endpoint="http://x/v1", input_per_mtok=0.1 * (i + 1),
                  output_per_mtok=0.4 * (i + 1), quality_prior=min(0.95, 0.3 + 0.08 * i),
                  capabilities=["tools", "json_mode", "streaming"]) for i in range(args.models)]
    scorer = PriorScorer(pool, 100.0)
    memory = ConversationMemory(100_000)
    table = RoutingTable({m.name: m for m in pool},
                         {"switchman/auto": RouterEntry("switchman/auto", scorer, 100.0)}, {},
                         memory)
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for t in range(args.turns):
        messages += [{"role": "user", "content": f"Question {t}: explain topic {t} briefly."},
                     {"role": "assistant", "content": f"Topic {t} is about ... " * 5}]
    messages.append({"role": "user", "content": "And finally, summarize."})
    raw = json.dumps({"model": "switchman/auto", "messages": messages, "max_tokens": 200,
                      "temperature": 0.2}).encode()

    timings = asyncio.run(_time_decisions(table, memory, raw, args.n))
    q = statistics.quantiles(timings, n=100)
    result = {"models": args.models, "messages": len(messages), "n": args.n,
              "p50_us": q[49] * 1e6, "p99_us": q[98] * 1e6}
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


async def _time_decisions(table: RoutingTable, memory: ConversationMemory, raw: bytes,
                          n: int) -> list[float]:
    """Seconds per decision, as the gateway makes it: parse, decide, remember the reply."""
    timings = []
    for _ in range(n):
        t0 = time.perf_counter()
        ctx = RequestContext("bench", t0)
        ctx.req = parse_chat_request(json.loads(raw), {}, table.known_names)
        decision = await table.decide(ctx)
        assert decision.conversation is not None
        memory.put(decision.conversation.after({"role": "assistant", "content": "ok"}),
                   decision.plan[0])
        timings.append(time.perf_counter() - t0)
    return timings


if __name__ == "__main__":
    sys.exit(main())
