"""``switchman label``: outcome data from the user's own prompts and pool.

``switchman.cli`` calls :func:`register`. Every user mistake (an unknown model, a missing
column, an unreadable file, both or neither of ``--reference`` / ``--judge``) is raised as
``ValueError`` / ``OSError`` before any model is called, and the CLI prints it as one
``switchman: error:`` line. The gateway's modules are imported inside the command, so
``switchman --help`` stays fast and works without the gateway extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from switchman.arguments import count_of_at_least, model_names, non_negative

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Send every prompt of PROMPTS to every model named by --models, through the pool's own
providers (the timeouts, retries and circuit breakers `serve` uses; local llama.cpp models
are started for the run), score each answer, and write the canonical outcomes table that
`switchman train` and `switchman profile add --outcomes` read.

Scoring, one of:
  --reference COLUMN  compare with the prompts table's COLUMN: a letter (C, (C)) is a
                      multiple-choice key, a number is compared within --tolerance, other
                      text by normalised exact match; quality is 1 or 0
  --judge MODEL       a pool model grades each answer 1-10 by a rubric, mapped to [0, 1];
                      its raw verdict is kept in judge_verdict; a verdict with no score is
                      a failure, not a 0

Resumable: pairs (prompt_id, model) already in OUT are skipped. Pairs that failed (and
those --max-usd kept from starting) are listed in OUT's sidecar OUT.failures.jsonl and
tried again by the next run; an answer whose judging failed is kept there and judged again
without being asked again. Exit status: 0 when every pair is in OUT, 1 when some are not,
130 when interrupted (Ctrl-C or SIGTERM; what was finished is written).
"""


def register(commands: Any) -> None:
    """Add ``label`` to the CLI."""
    label = commands.add_parser(
        "label",
        help="run your prompts through pool models and score the answers",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    label.add_argument(
        "--config",
        type=Path,
        help="gateway configuration whose pool is called (default: "
        "$SWITCHMAN_CONFIG, else the default pool `serve` uses)",
    )
    label.add_argument(
        "--prompts",
        required=True,
        type=Path,
        help="prompts table (.parquet, .csv, .jsonl) with prompt_id, prompt, "
        "the --reference column if scoring by reference, optionally task",
    )
    label.add_argument(
        "--models",
        required=True,
        type=model_names,
        metavar="A,B",
        help="pool models to label, comma-separated",
    )
    label.add_argument(
        "--out", required=True, type=Path, help="outcomes table to write or resume (.parquet)"
    )
    scoring = label.add_mutually_exclusive_group()
    scoring.add_argument(
        "--reference", metavar="COLUMN", help="score against this column of the prompts table"
    )
    scoring.add_argument(
        "--judge",
        metavar="MODEL",
        help="score with this pool model as judge (1-10 mapped to [0, 1])",
    )
    label.add_argument(
        "--max-usd",
        type=non_negative,
        metavar="X",
        help="spend cap of this run: no call starts whose worst case (twice "
        "the prompt's estimated tokens plus --max-tokens, at the pool's "
        "prices) would take this run's spend past X",
    )
    label.add_argument(
        "--concurrency",
        type=count_of_at_least(1),
        default=4,
        metavar="N",
        help="calls in flight at once (default 4; each model's max_in_flight still applies)",
    )
    label.add_argument(
        "--max-tokens",
        type=count_of_at_least(1),
        default=512,
        metavar="N",
        help="max_tokens of every call, answers and verdicts (default 512)",
    )
    label.add_argument(
        "--temperature",
        type=_temperature,
        metavar="T",
        default=0.0,
        help="sampling temperature of every call (default 0); 'default' sends none, for "
        "models that accept only their own (some reasoning models refuse 0)",
    )
    label.add_argument(
        "--tolerance",
        type=non_negative,
        metavar="T",
        default=1e-6,
        help="a numeric reference matches when |answer - reference| <= "
        "tolerance * max(1, |reference|) (default 1e-6)",
    )
    label.set_defaults(func=_label)


def _temperature(text: str) -> float | None:
    if text == "default":
        return None
    value = float(text)
    if not 0 <= value <= 2:
        raise argparse.ArgumentTypeError("must be from 0 to 2, or 'default'")
    return value




def _config(path: Path | None) -> Any:
    from switchman.config import load_config
    from switchman.gateway.defaults import default_config

    path = path or (
        Path(os.environ["SWITCHMAN_CONFIG"]) if os.environ.get("SWITCHMAN_CONFIG") else None
    )
    return (load_config(path), str(path)) if path else (default_config(), "the default pool")


def _check_models(args: argparse.Namespace, config: Any, source: str) -> None:
    """Every named model is in the pool and callable (its API key is set)."""
    from switchman.gateway.service import unavailable_models

    pool = [m.name for m in config.models]
    unknown = [m for m in args.models if m not in pool]
    if unknown:
        raise ValueError(
            f"--models: {', '.join(unknown)} not in the pool of {source}; its "
            f"models: {', '.join(pool)}"
        )
    if args.judge is not None and args.judge not in pool:
        raise ValueError(
            f"--judge: {args.judge} is not in the pool of {source}; its models: {', '.join(pool)}"
        )
    named = set(args.models) | {args.judge}
    blocked = unavailable_models([m for m in config.models if m.name in named], os.environ)
    if blocked:
        raise ValueError(
            "; ".join(f"model {name} cannot be called: {why}" for name, why in blocked.items())
        )


def _prompts(args: argparse.Namespace) -> pd.DataFrame:
    from switchman.data import DataError, load_prompts

    keep = ["task"] + ([args.reference] if args.reference else [])
    prompts = load_prompts(args.prompts, keep=keep)
    if args.reference is not None:
        if args.reference not in prompts.columns:
            raise DataError(f"{args.prompts}: no column {args.reference!r} (named by --reference)")
        missing = prompts[args.reference].isna().to_numpy()
        if missing.any():
            first = prompts["prompt_id"][missing].iat[0]
            raise DataError(
                f"{args.prompts}: {int(missing.sum())} prompts have no reference "
                f"answer in {args.reference!r} (first: prompt_id {first!r})"
            )
    if "task" in prompts.columns:
        prompts["task"] = prompts["task"].fillna("unknown").astype(str)
    return prompts


def _label(args: argparse.Namespace) -> int:
    if (args.reference is None) == (args.judge is None):
        raise ValueError("name one way to score the answers: --reference COLUMN or --judge MODEL")
    try:
        from switchman.gateway.execute.local import LocalModelError
        from switchman.label import store
    except ImportError as exc:
        raise ValueError(
            f"switchman label calls models through the gateway's providers: "
            f"pip install 'switchman[gateway]' ({exc})"
        ) from None
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per health check is noise
    store.check_out_path(args.out)
    config, source = _config(args.config)
    _check_models(args, config, source)
    prompts = _prompts(args)
    try:
        summary = asyncio.run(_run(args, config, prompts))
    except LocalModelError as exc:
        raise ValueError(f"a local model cannot start: {exc}") from None
    return _report(args, summary)


async def _run(args: argparse.Namespace, config: Any, prompts: pd.DataFrame) -> Any:
    """The run's summary; an interrupted run (Ctrl-C, SIGTERM) still writes what it did."""
    from switchman.label.budget import SpendCap
    from switchman.label.calls import PoolCalls
    from switchman.label.run import LabelRun, Scoring
    from switchman.progress import stage

    task = asyncio.current_task()
    if task is not None:  # SIGTERM ends the run as Ctrl-C does
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    names = [*args.models, *([args.judge] if args.judge else [])]
    calls = PoolCalls(config, names, args.max_tokens, args.temperature)
    run = LabelRun(
        calls,
        prompts,
        args.models,
        Scoring(args.reference, args.judge, args.tolerance),
        args.out,
        SpendCap(args.max_usd),
        args.concurrency,
    )
    if not run.summary.todo:
        run.flush()
        return run.summary
    try:
        with stage("labelling", run.summary.todo, unit="pair") as bar:
            async with calls:
                await run.run(bar)
    except asyncio.CancelledError:
        run.summary.interrupted = True
    return run.summary


def _report(args: argparse.Namespace, summary: Any) -> int:
    """The closing lines on stderr; the exit status says whether every pair is in OUT."""
    from switchman.label import store
    from switchman.label.run import failure_lines

    spend = summary.answer_usd + summary.judge_usd
    cap = f" of --max-usd {args.max_usd:g}" if args.max_usd is not None else ""
    judge = (
        f" (answers ${summary.answer_usd:.6f}, judge ${summary.judge_usd:.6f})"
        if args.judge
        else ""
    )
    sys.stderr.write(
        f"switchman label: {summary.done} pairs labelled, {summary.skipped} skipped (already "
        f"in {args.out}), {summary.failed} failed, {summary.not_started} not started "
        f"(--max-usd); spent ${spend:.6f}{cap}{judge}; {args.out} holds {summary.rows} "
        "rows\n"
    )
    if summary.failures:
        sys.stderr.write(
            f"not labelled ({len(summary.failures)} pairs, listed in "
            f"{store.failures_path(args.out)}; the next run tries them again):\n"
        )
        sys.stderr.write("".join(line + "\n" for line in failure_lines(summary)))
    if summary.interrupted:
        sys.stderr.write(
            "switchman label: interrupted; the pairs it finished are in "
            f"{args.out}, a rerun labels the rest\n"
        )
        return 130
    return 1 if summary.failures else 0
