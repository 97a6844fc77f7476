"""CPU the decision log's writer thread spends per row, at a steady request rate.

The writer thread serialises each row and inserts batches into SQLite off the event loop,
but its CPU is the gateway's all the same: at a pinned request's ~0.7 ms it was about a
twelfth of it. This records ``--rows`` typical rows (a pinned request's) at ``--rate`` per
second from this thread, as the gateway's loop would, and reads the writer thread's own
CPU clock (/proc/self/task/<tid>/stat) around them.

    .venv/bin/python benchmarks/decision_log_cpu.py [--rows 20000] [--rate 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import switchman  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from gateway_cpu import cpu_times  # noqa: E402  (benchmarks/, the script's folder)

from switchman.gateway.api.chat import new_request_id  # noqa: E402
from switchman.gateway.record.decision_log import DecisionLog, DecisionRecord  # noqa: E402


def pinned_row() -> DecisionRecord:
    return DecisionRecord(
        request_id=new_request_id(), ts=time.time(), router=None, requested_model="medium",
        model="medium", plan=["medium"], tried=["medium"], errors=[],
        reason="pinned by request", status=200, latency_ms=1.2, overhead_ms=0.4,
        prompt_tokens=12, completion_tokens=8, cost_usd=1e-6, cost_source="usage",
        api_key_id="c00397de4384", conversation="abcdef123456", upstream_id="chatcmpl-123")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="rows per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = DecisionLog(Path(tmp) / "log.sqlite")
        writer = Path(f"/proc/self/task/{log._thread.native_id}/stat")
        user0, sys0 = cpu_times(writer)
        start = time.perf_counter()
        for n in range(1, args.rows + 1):
            log.record(pinned_row())
            if n % 10 == 0:  # requests arrive in small bursts, as wrk's connections send them
                time.sleep(max(0.0, start + n / args.rate - time.perf_counter()))
        log.flush(timeout=60)
        user1, sys1 = cpu_times(writer)
        log.close()
    per_row = 1e6 / args.rows
    print(f"decision-log writer thread: {per_row * (user1 - user0 + sys1 - sys0):.1f} us CPU "
          f"per row (user {per_row * (user1 - user0):.1f}, system {per_row * (sys1 - sys0):.1f})"
          f"; {args.rows} rows at {args.rate:.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
