"""Routing speed against issue 2's targets; prints medians and a target-vs-measured table.

    .venv/bin/python benchmarks/routing_speed.py [--router DIR] [--skip-train] [--workdir DIR]

(c) `switchman train` on the full mmlupro.parquet, a subprocess of the real CLI, from a cold
    cache: a fresh SWITCHMAN_CACHE_DIR holding only the prepared encoder (the ONNX export and
    the static table it is distilled into are timed once, separately).
(a) Routing one prompt end to end in a warm process: encode with the default encoder (every
    text new to the process), predict quality and cost, ``policy.plan``. p50/p90 over ~300
    held-out mmlupro prompts, with the default router trained on mmlupro's 70% training part
    (split_by_prompt, seed 0), trained here, or --router DIR.
(b) `switchman route` on 10,000 prompts (llmrouter + mmlupro, `prompt_id, prompt` only):
    prompts/s of the whole command as a subprocess (start-up, loading, embedding, prediction,
    sweep, writing), and of the same steps in-process. The default encoder needs no warm
    cache; embedding is included.
(d) Peak resident memory (ru_maxrss from os.wait4) of those `switchman route` subprocesses.
(e) Per-prompt cost of estimating the prompts of (a) a batch at a time (1, 2, 4, 8, 16, 32),
    as the gateway does with the routed requests that reach it in one loop turn
    (switchman.gateway.route.batching): encode and predict, ms per prompt.

Every figure is the median of --repeats runs where repeated. The machine may be shared:
other processes' load shows up in these timings.

--blas-threads N caps the BLAS thread pool (OPENBLAS_NUM_THREADS / MKL_NUM_THREADS for the
CLI subprocesses, threadpoolctl in this process). On a busy 2-core box multi-threaded BLAS
on small matrices waits on descheduled threads; compare a run with --blas-threads 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
try:
    import switchman  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from switchman import policy  # noqa: E402
from switchman.data import load_outcomes, load_prompts, split_by_prompt  # noqa: E402
from switchman.encoders import default_encoder  # noqa: E402
from switchman.eval.sweep import sweep_decisions  # noqa: E402
from switchman.router import Router, new_router  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "routing"
TARGETS = {"p50_ms": 5.0, "prompts_per_s": 500.0, "train_s": 180.0, "peak_mb": 1024.0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# Peak memory is read in a small launcher process: a child forked (or vfork-ed) straight from
# this big process inherits its resident-set high-water mark at exec, so its ru_maxrss would
# report this process's peak, not the CLI's. The launcher's own child starts from ~10 MB.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {wall} {usage.ru_maxrss}")
"""


def run_cli(args: list[str], cache_dir: Path, log_path: Path) -> tuple[float, float]:
    """Run `switchman ARGS`; return (wall seconds, peak RSS in MB of that process)."""
    env = dict(os.environ, SWITCHMAN_CACHE_DIR=str(cache_dir))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    result = log_path.with_suffix(".rusage")
    with open(log_path, "w") as out:
        subprocess.run([sys.executable, "-c", _LAUNCHER, str(result), sys.executable, "-m",
                        "switchman.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                       check=True)
    code, wall, maxrss_kib = result.read_text().split()
    if int(code) != 0:
        sys.exit(f"switchman {' '.join(args)} failed ({code}); see {log_path}:\n"
                 + log_path.read_text()[-2000:])
    return float(wall), int(maxrss_kib) / 1024  # Linux reports KiB


def revision() -> str:
    """The checkout's commit, marked dirty if tracked files changed (figures track code)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, text=True, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def prepare_encoder(model_cache: Path) -> float | None:
    """Build the default encoder in ``model_cache`` (once); seconds, or None if it was there."""
    if (model_cache / "encoders").exists():
        return None
    start = time.perf_counter()
    default_encoder(model_cache).encode(["warm up"])
    return time.perf_counter() - start


def fresh_cache(model_cache: Path, path: Path) -> Path:
    """An empty cache directory that already holds the prepared encoder."""
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(model_cache / "encoders", path / "encoders")
    return path


def prompts_table(n: int, seed: int) -> pd.DataFrame:
    """``n`` distinct prompts: all of llmrouter, then mmlupro ones in a seeded order."""
    llm = pd.read_parquet(DATA / "llmrouter.parquet", columns=["prompt_id", "prompt"])
    mmlu = pd.read_parquet(DATA / "mmlupro.parquet", columns=["prompt_id", "prompt"])
    llm = llm.drop_duplicates("prompt_id").assign(prompt_id=lambda d: "llmrouter/" + d.prompt_id)
    mmlu = mmlu.drop_duplicates("prompt_id").assign(prompt_id=lambda d: "mmlupro/" + d.prompt_id)
    mmlu = mmlu.sample(frac=1.0, random_state=seed)
    table = pd.concat([llm, mmlu], ignore_index=True).drop_duplicates("prompt")
    if len(table) < n:
        sys.exit(f"only {len(table)} distinct prompts available, asked for {n}")
    return table.iloc[:n].reset_index(drop=True)


def latency(router_dir: Path, cache: Path, texts: list[str],
            warmup: list[str]) -> dict[str, np.ndarray]:
    """Per prompt: encode, predict, plan; milliseconds."""
    router = Router.load(router_dir, encoder=default_encoder(cache))
    w = router.default_cost_weight
    for text in warmup:  # a warm process: model loaded, code paths exercised
        policy.plan(router.estimate([text]), w)
    parts = {"encode": [], "predict": [], "plan": [], "total": []}
    for text in texts:
        t0 = time.perf_counter()
        features = router.features([text])
        t1 = time.perf_counter()
        estimates = router.estimate_features(features)
        t2 = time.perf_counter()
        ranked = policy.plan(estimates, w)
        t3 = time.perf_counter()
        assert ranked, "plan() returned no model"
        for key, value in (("encode", t1 - t0), ("predict", t2 - t1), ("plan", t3 - t2),
                           ("total", t3 - t0)):
            parts[key].append(1000 * value)
    return {k: np.asarray(v) for k, v in parts.items()}


BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def batched(router_dir: Path, cache: Path, texts: list[str], repeats: int) -> dict[int, float]:
    """Batch size -> median ms per prompt of ``Router.estimate`` over ``texts`` in batches."""
    router = Router.load(router_dir, encoder=default_encoder(cache))
    router.estimate(texts[:32])
    out = {}
    for size in BATCH_SIZES:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(texts), size):
                router.estimate(texts[i:i + size])
            runs.append(1000 * (time.perf_counter() - start) / len(texts))
        out[size] = statistics.median(runs)
    return out


def route_in_process(router_dir: Path, prompts_path: Path, cache: Path, out: Path,
                     n_points: int) -> dict[str, float]:
    """`switchman route`'s steps in this process, each timed (seconds)."""
    t = [time.perf_counter()]
    router = Router.load(router_dir, encoder=default_encoder(cache))
    t.append(time.perf_counter())
    prompts = load_prompts(prompts_path)
    t.append(time.perf_counter())
    features = router.features(prompts["prompt"].tolist())
    t.append(time.perf_counter())
    estimates = router.estimate_features(features)
    t.append(time.perf_counter())
    decisions = sweep_decisions(estimates, prompts["prompt_id"].tolist(), n_points)
    t.append(time.perf_counter())
    decisions.to_parquet(out, index=False)
    t.append(time.perf_counter())
    names = ("load router", "read prompts", "embed", "predict", "sweep", "write")
    times = dict(zip(names, np.diff(t), strict=True))
    times["total"] = t[-1] - t[0]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path,
                        help="keep caches, routers and decisions here (default: a temp dir)")
    parser.add_argument("--router", type=Path,
                        help="trained router dir for (a) and (b) instead of training one")
    parser.add_argument("--skip-train", action="store_true", help="skip (c)")
    parser.add_argument("--n-latency", type=int, default=300)
    parser.add_argument("--n-route", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=25, help="route --points")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int,
                        help="cap BLAS threads in this process and the CLI subprocesses")
    args = parser.parse_args()
    if args.blas_threads is None:
        return run(args)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.blas_threads)  # inherited by the CLI subprocesses
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        return run(args)


def run(args: argparse.Namespace) -> int:

    work = args.workdir or Path(tempfile.mkdtemp(prefix="switchman-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    blas = "library default" if args.blas_threads is None else str(args.blas_threads)
    log(f"workdir {work}; {os.cpu_count()} CPUs; BLAS threads {blas}; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows: list[tuple[str, str, str, str]] = []  # (what, target, measured, verdict)
    notes: list[str] = []

    model_cache = work / "model"
    prepared = prepare_encoder(model_cache)
    if prepared is not None:
        notes.append(f"encoder preparation (ONNX export + static table, once per cache dir, "
                     f"not in (c)): {prepared:.1f} s")

    # (c) train on the full mmlupro from a cold embedding cache, via the real CLI
    warm = work / "cache-warm"
    if not args.skip_train:
        fresh_cache(model_cache, warm)
        log("(c) switchman train --data mmlupro.parquet (cold cache) ...")
        wall, rss = run_cli(["train", "--data", str(DATA / "mmlupro.parquet"),
                             "--out", str(work / "router-mmlupro-full")], warm,
                            work / "train.log")
        ok = wall <= TARGETS["train_s"]
        rows.append(("(c) train mmlupro.parquet, cold cache", "<= 180 s", f"{wall:.1f} s",
                     "ok" if ok else "MISSED"))
        notes.append(f"(c) train peak RSS {rss:.0f} MB; log {work / 'train.log'}")
    elif not warm.exists():
        fresh_cache(model_cache, warm)

    # the router for (a) and (b): default, trained on mmlupro's 70% training part
    outcomes = load_outcomes(DATA / "mmlupro.parquet")
    train_df, test_df = split_by_prompt(outcomes, 0.3, seed=0)
    held_out = test_df.drop_duplicates("prompt_id")["prompt"].tolist()
    if args.router is not None:
        router_dir = args.router
    else:
        router_dir = work / "router-mmlupro-train"
        log("training the default router on mmlupro's training part (for (a), (b)) ...")
        start = time.perf_counter()
        new_router("default", encoder=default_encoder(warm)).fit(train_df).save(router_dir)
        notes.append(f"default router on mmlupro train part ({train_df.prompt_id.nunique()} "
                     f"prompts), in-process: {time.perf_counter() - start:.1f} s")

    # (a) one prompt end to end, warm process
    texts = list(dict.fromkeys(held_out))[: args.n_latency]
    warmup = list(dict.fromkeys(train_df["prompt"]))[:20]
    log(f"(a) routing {len(texts)} prompts one at a time ...")
    lat = latency(router_dir, warm, texts, warmup)
    p50, p90 = np.percentile(lat["total"], [50, 90])
    rows.append(("(a) one prompt end to end, p50", "<= 5 ms", f"{p50:.2f} ms",
                 "ok" if p50 <= TARGETS["p50_ms"] else "MISSED"))
    rows.append(("(a) one prompt end to end, p90", "-", f"{p90:.2f} ms", ""))
    notes.append("(a) median ms: " + ", ".join(
        f"{k} {np.median(v):.2f}" for k, v in lat.items() if k != "total")
        + f"; prompt length median {np.median([len(t) for t in texts]):.0f} chars")

    # (e) the same prompts, a batch at a time
    per_prompt = batched(router_dir, warm, texts, args.repeats)
    for size, ms in per_prompt.items():
        rows.append((f"(e) estimate in batches of {size}, per prompt", "-", f"{ms:.3f} ms", ""))

    # (b) switchman route on n prompts
    table = prompts_table(args.n_route, args.seed)
    prompts_path = work / f"prompts-{len(table)}.parquet"
    table.to_parquet(prompts_path, index=False)

    walls, peaks = [], []
    for i in range(args.repeats):
        log(f"(b) switchman route on {len(table)} prompts, run {i + 1}/{args.repeats} ...")
        wall, rss = run_cli(["route", "--router", str(router_dir), "--prompts",
                             str(prompts_path), "--out", str(work / "decisions.parquet"),
                             "--points", str(args.points)], warm, work / "route.log")
        walls.append(wall)
        peaks.append(rss)
    rate = len(table) / statistics.median(walls)
    rows.append((f"(b) switchman route, {len(table)} prompts (subprocess)", ">= 500 /s",
                 f"{rate:.0f} /s ({statistics.median(walls):.2f} s)",
                 "ok" if rate >= TARGETS["prompts_per_s"] else "MISSED"))
    inproc = [route_in_process(router_dir, prompts_path, warm, work / "decisions-inproc.parquet",
                               args.points) for _ in range(args.repeats)]
    total = statistics.median(r["total"] for r in inproc)
    rows.append((f"(b) same steps in-process, {len(table)} prompts", "-",
                 f"{len(table) / total:.0f} /s ({total:.2f} s)", ""))
    notes.append("(b) in-process median s: " + ", ".join(
        f"{k} {statistics.median(r[k] for r in inproc):.3f}" for k in inproc[0] if k != "total"))
    peak = max(peaks)
    rows.append((f"(d) peak RSS of switchman route, {len(table)} prompts", "< 1024 MB",
                 f"{peak:.0f} MB", "ok" if peak < TARGETS["peak_mb"] else "MISSED"))

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    width = max(len(r[0]) for r in rows)
    print(f"\nrouting speed at {revision()} ({os.cpu_count()} CPUs, BLAS threads {blas}, "
          f"load average now {load}; medians of {args.repeats} where repeated)\n")
    print(f"{'measure':<{width}}  {'target':>10}  {'measured':>22}  verdict")
    for what, target, measured, verdict in rows:
        print(f"{what:<{width}}  {target:>10}  {measured:>22}  {verdict}")
    print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
