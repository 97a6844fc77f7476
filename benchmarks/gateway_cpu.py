"""CPU time per request of the gateway process: pinned, prior-routed, learned, and the floor.

On a shared, loaded machine wall-clock throughput measures the neighbours as much as the
gateway. The CPU seconds the gateway process itself spends (utime + stime from
/proc/<pid>/stat, all its threads included: the decision-log writer, estimation threads)
divided by the requests it answered does not: it is what a request costs, and a
throughput ratio on an otherwise idle machine follows from the ratio of these figures
(the pass-through floor's CPU per request over the target's), as long as the process is
CPU-bound on one core.

One run starts the instant upstream, ``switchman serve`` (with ``--router DIR`` also a
learned router) and the do-nothing floor proxy (benchmarks/gateway_floor_proxy.py), warms
each target up, then drives it with ``wrk`` at one concurrency for a fixed time and reads
the process's CPU clock before and after. Requests that did not answer 200 are reported
(they would make a target look cheaper than it is).

    .venv/bin/python benchmarks/gateway_cpu.py [--router DIR] [--seconds 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import yaml
from gateway_overhead import free_port, gateway_config, start_servers, wrk

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_times(stat: Path) -> tuple[float, float]:
    """(utime, stime) in seconds from a ``/proc`` stat file: ``/proc/<pid>/stat`` for a
    process (every thread), ``/proc/<pid>/task/<tid>/stat`` for one thread."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (every thread), in seconds."""
    return sum(cpu_times(Path(f"/proc/{pid}/stat")))


def measure(pid: int, url: str, body: dict, concurrency: int, seconds: float,
            tmp: Path) -> dict:
    before = cpu_seconds(pid)
    result = wrk(url, body, concurrency, seconds, tmp)
    used = cpu_seconds(pid) - before
    return {**result, "cpu_s": used, "cpu_us_per_request": 1e6 * used / max(1, result["requests"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--router", help="trained router directory (adds the learned row)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per target; the lowest CPU per request is printed")
    args = parser.parse_args()
    up_port, gw_port, floor_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        config = gateway_config(tmp, upstream, args.router)
        pool = yaml.safe_load(config.read_text())["models"]
        messages = [{"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "What is the capital of France?"}]
        body = {"model": pool[len(pool) // 2]["name"], "max_tokens": 16, "messages": messages}
        gw_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        with contextlib.ExitStack() as stack:
            gateway, floor = start_servers(stack, tmp, config, up_port, gw_port, floor_port)
            targets = [("python floor proxy", floor.pid,
                        f"http://127.0.0.1:{floor_port}/v1/chat/completions", body),
                       ("switchman pinned", gateway.pid, gw_url, body),
                       ("switchman auto (prior)", gateway.pid, gw_url,
                        {**body, "model": "switchman/auto"})]
            if args.router:
                targets.append(("switchman learned", gateway.pid, gw_url,
                                {**body, "model": "switchman/learned"}))
            for _target, _pid, url, payload in targets:  # imports, pools, first encodes
                wrk(url, payload, 8, 2, tmp)
            rows = []
            for target, pid, url, payload in targets:
                runs = [measure(pid, url, payload, args.concurrency, args.seconds, tmp)
                        for _ in range(args.repeats)]
                rows.append((target, min(runs, key=lambda r: r["cpu_us_per_request"])))
    floor_us = rows[0][1]["cpu_us_per_request"]
    head = (f"{'target':<24}{'requests':>10}{'cpu s':>8}{'cpu us/req':>12}{'x floor':>9}"
            f"{'errors':>8}")
    lines = [head, "-" * len(head)]
    for target, r in rows:
        lines.append(f"{target:<24}{r['requests']:>10}{r['cpu_s']:>8.2f}"
                     f"{r['cpu_us_per_request']:>12.0f}"
                     f"{r['cpu_us_per_request'] / floor_us:>9.2f}{r['socket_errors']:>8}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.write(f"concurrency {args.concurrency}, {args.seconds:g} s per run; "
                     f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus\n"
                     "throughput ratio to the floor on a CPU-bound core ~ floor us/req "
                     "over the target's\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
