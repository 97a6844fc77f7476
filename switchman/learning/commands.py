"""The ``switchman replay`` subcommand: argparse registration and the one function it runs.

``switchman.cli`` calls :func:`register`. Imports of the router, pandas and the replay
happen inside the function, so ``switchman --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from switchman.arguments import model_names, non_negative, positive, share

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``replay`` to the main CLI."""
    p = subparsers.add_parser(
        "replay", help="replay an outcomes stream step by step, learning from what was chosen",
        description="Route the stream's prompts in file order with the router's current "
                    "online state (and budget pacing); only the chosen model's outcome is "
                    "read and fed back. Writes decisions.parquet, summary.json, replay.png "
                    "and, when learning, learner.json.")
    p.add_argument("--router", required=True, type=Path, help="trained router directory")
    p.add_argument("--stream", required=True, type=Path,
                   help="outcomes table (every model's quality and cost per prompt)")
    p.add_argument("--out", required=True, type=Path, help="directory for the results")
    learn = p.add_mutually_exclusive_group()
    learn.add_argument("--learn", dest="learn", action="store_true", default=True,
                       help="learn online from the chosen models' outcomes (default)")
    learn.add_argument("--no-learn", dest="learn", action="store_false",
                       help="the offline router as it is")
    spend = p.add_mutually_exclusive_group()
    spend.add_argument("--budget-usd", type=positive, default=None,
                       help="total budget for the stream: the cost weight is paced so it "
                            "lasts, and spend never exceeds it")
    spend.add_argument("--cost-weight", type=non_negative, default=None,
                       help="fixed quality-per-dollar trade-off (default: the router's)")
    p.add_argument("--models", type=model_names, default=None,
                   help="comma-separated models the run may choose (default: all)")
    p.add_argument("--feedback-rate", type=share, default=1.0,
                   help="share of steps whose quality is fed back (default 1; costs are "
                        "always known)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the feedback draw and the learner (default 0)")
    p.set_defaults(func=replay_command)


def replay_command(args: argparse.Namespace) -> int:
    from switchman.learning.run import ReplayRequest, run_replay

    summary = run_replay(ReplayRequest(
        router=args.router, stream=args.stream, out=args.out, learn=args.learn,
        budget_usd=args.budget_usd, cost_weight=args.cost_weight, models=args.models,
        feedback_rate=args.feedback_rate, seed=args.seed))
    base = summary["baselines"]
    lines = [f"{summary['n_steps']} steps, {'learning' if summary['learn'] else 'no learning'}:"
             f" mean quality {summary['mean_quality']:.4f}, total cost "
             f"${summary['total_cost']:.4f}"
             + (f" of ${summary['budget_usd']:.4f}" if summary["budget_usd"] else ""),
             "quality by quarter: "
             + " ".join(f"{q:.3f}" for q in summary["quality_by_quarter"]),
             f"no-learn: {base['no_learn']['mean_quality']:.4f} at "
             f"${base['no_learn']['total_cost']:.4f}; best single "
             f"{base['best_single']['model']}: {base['best_single']['mean_quality']:.4f} at "
             f"${base['best_single']['total_cost']:.4f}",
             f"wrote {args.out}/decisions.parquet, summary.json and replay.png"]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
