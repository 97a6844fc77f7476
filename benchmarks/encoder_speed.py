"""Speed of the encoders: single-query latency, batch throughput, cached lookups.

The contextual int8 MiniLM (window --max-tokens/--head-tokens), then the default static
encoder (a token table, no window) on the same prompts, then the cache's lookup path.

    .venv/bin/python benchmarks/encoder_speed.py [--n 2000] [--cache-dir DIR]

The int8 model lives in the cache dir (default: switchman's own, so it is built at
most once); the 10k cached-lookup figure uses a throw-away SQLite file filled with random
vectors, since only the lookup path is timed there.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from switchman.embed import CachedEncoder, OnnxMiniLMEncoder, default_cache_dir
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from switchman.embed import CachedEncoder, OnnxMiniLMEncoder, default_cache_dir
from switchman.embed_static import StaticMiniLMEncoder  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class RandomEncoder:
    """Stands in for the model when only the cache's lookup path is measured."""

    name, dim = "minilm-l6-int8-v1", 384

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        v = np.random.default_rng(0).standard_normal((len(texts), self.dim), dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def latency(fn, items: Sequence[str]) -> str:
    """p50 and best wall time per call, and CPU time per call (what a quiet box would see
    is near the best; CPU time shows the work independent of other processes)."""
    times = []
    cpu = time.process_time()
    for x in items:
        t = time.perf_counter()
        fn([x])
        times.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu) / len(items)
    return (f"{1000 * np.median(times):8.2f} ms p50, {1000 * min(times):.2f} ms best, "
            f"{1000 * cpu:.2f} ms cpu")


def throughput(encode, short: list[str], prompts: list[str]) -> None:  # noqa: ANN001
    for label, texts in (("short", short), ("routing", prompts)):
        t, cpu = time.perf_counter(), time.process_time()
        encode(texts)
        dt, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"batch throughput, {label:8s}    : {len(texts) / dt:8.0f} texts/s "
              f"({dt:.1f} s for {len(texts)}; {1000 * cpu / len(texts):.2f} ms cpu per text)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="routing prompts for throughput")
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--head-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    # Timings on a shared box mean little without the load they were taken under.
    print(f"cpus={os.cpu_count()} load average={os.getloadavg()[0]:.1f}")

    df = pd.read_parquet(DATA / "routing" / "mmlupro.parquet", columns=["prompt_id", "prompt"])
    prompts = df.drop_duplicates("prompt_id").sample(args.n, random_state=0)["prompt"].tolist()
    short = [p.split("\n")[0][:120] for p in prompts]

    enc = OnnxMiniLMEncoder(args.cache_dir, max_tokens=args.max_tokens,
                            head_tokens=args.head_tokens, threads=args.threads)
    t = time.perf_counter()
    enc.encode(["warm up"])
    print(f"first load (build if needed)  : {time.perf_counter() - t:8.2f} s")
    enc.encode(short[:50])
    tokens = [len(x) for x in enc._ids(prompts)]
    print(f"routing prompts: n={len(prompts)}, tokens p50={np.median(tokens):.0f} "
          f"mean={np.mean(tokens):.0f} ({enc.name}, {enc.threads} threads)")

    print(f"single short query            : {latency(enc.encode, short[:300])}")
    mid = [p for p, n in zip(prompts, tokens, strict=True) if 100 <= n <= 200][:100]
    print(f"single routing prompt (100-200 tokens): {latency(enc.encode, mid)}")

    throughput(enc.encode, short, prompts)

    static = StaticMiniLMEncoder(args.cache_dir)
    t = time.perf_counter()
    static.encode(["warm up"])
    print(f"\n{static.name}: first load (table built if needed): "
          f"{time.perf_counter() - t:.2f} s")
    print(f"single short query            : {latency(static.encode, short[:300])}")
    print(f"single routing prompt (100-200 tokens): {latency(static.encode, mid)}")
    throughput(static.encode, short, prompts)
    print()

    with tempfile.TemporaryDirectory() as tmp:
        keys = [f"routing prompt number {i} " * 20 for i in range(10_000)]
        CachedEncoder(RandomEncoder(), Path(tmp)).encode(keys)  # fill
        fresh = CachedEncoder(RandomEncoder(), Path(tmp))
        t = time.perf_counter()
        fresh.encode(keys)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        fresh.encode(keys)
        warm = time.perf_counter() - t
        t = time.perf_counter()
        for k in keys[:1000]:
            fresh.encode([k])
        one = (time.perf_counter() - t) / 1000
        print(f"10k cached lookup, new process: {1000 * cold:8.1f} ms")
        print(f"10k cached lookup, again      : {1000 * warm:8.1f} ms")
        print(f"1 cached lookup (gateway)     : {1e6 * one:8.1f} us")


if __name__ == "__main__":
    main()
