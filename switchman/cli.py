"""The ``switchman`` command: train, route, eval, profile, models, and the gateway's commands.

Every user mistake (a missing file, a bad column, an incompatible router directory) ends
as one line ``switchman: error: ...`` naming the file and the problem, with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from switchman import __version__
from switchman.learning.commands import register as register_replay

log = logging.getLogger("switchman")

def _positive_int(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("needs at least 2")
    return value


def build_parser() -> argparse.ArgumentParser:
    from switchman.estimators import ROUTER_NAMES

    parser = argparse.ArgumentParser(
        prog="switchman",
        description="Route each LLM request to the cheapest model expected to answer well.",
    )
    parser.add_argument("--version", action="version", version=f"switchman {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a router on an outcomes table")
    train.add_argument("--data", required=True, type=Path,
                       help="outcomes table (.parquet, .jsonl, .csv; RouterBench .pkl/.csv; "
                            "LLMRouter .json)")
    train.add_argument("--router", default="default", choices=ROUTER_NAMES,
                       help="estimator family (default: the stacked blend of all families)")
    train.add_argument("--out", required=True, type=Path, help="directory to save the router")
    train.add_argument("--prices", type=Path,
                       help="price table (prices.json shape) for costs a source lacks")
    _add_seed_and_encoder_options(train)
    train.set_defaults(func=_train)

    route = commands.add_parser("route", help="route prompts with a trained router")
    route.add_argument("--router", required=True, type=Path, help="trained router directory")
    route.add_argument("--prompts", required=True, type=Path,
                       help="prompts table with prompt_id and prompt (other columns ignored)")
    route.add_argument("--out", required=True, type=Path,
                       help="decisions table to write: .parquet (the contract's), .csv or .jsonl")
    route.add_argument("--points", type=_positive_int, default=41,
                       help="operating points from cheapest to best quality (default 41)")
    route.add_argument("--models", type=_model_list, metavar="A,B,C",
                       help="route among these of the router's models only (default: all)")
    route.add_argument("--prices", type=Path,
                       help="price table (prices.json shape) to decide on for the models it "
                            "names (default: the prices the router was trained with)")
    route.set_defaults(func=_route)

    evaluate = commands.add_parser(
        "eval", help="train on one table, evaluate on another, write a report")
    evaluate.add_argument("--train", required=True, type=Path, help="training outcomes table")
    evaluate.add_argument("--test", required=True, type=Path, help="test outcomes table")
    evaluate.add_argument("--router", action="append", choices=ROUTER_NAMES,
                          help="router(s) to evaluate; repeatable (default: default)")
    evaluate.add_argument("--out", required=True, type=Path, help="report directory")
    evaluate.add_argument("--points", type=_positive_int, default=41,
                          help="operating points per router (default 41)")
    evaluate.add_argument("--prices", type=Path, help="price table for costs a source lacks")
    _add_seed_and_encoder_options(evaluate)
    evaluate.set_defaults(func=_eval)

    from switchman.profile_commands import register as register_profiles

    register_profiles(commands)
    try:
        from switchman.gateway.commands import register
    except ImportError:  # the gateway extra is not installed
        log.debug("gateway commands unavailable", exc_info=True)
    else:
        register(commands)
    register_replay(commands)
    return parser


def _model_list(text: str) -> list[str]:
    models = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not models:
        raise argparse.ArgumentTypeError("name at least one model")
    return models


def _add_seed_and_encoder_options(command: argparse.ArgumentParser) -> None:
    """What a training run is reproduced from, besides its data: the seed and the encoder."""
    from switchman.encoders import DEFAULT_ENCODER, KNOWN_ENCODERS

    command.add_argument(
        "--seed", type=int, default=0,
        help="seed of the estimators' folds, clusters and initial values (default 0): the "
             "same data, seed and encoder train the same router")
    command.add_argument(
        "--encoder", default=DEFAULT_ENCODER, metavar="NAME",
        help=f"prompt encoder: {', '.join(KNOWN_ENCODERS)} (default {DEFAULT_ENCODER}: a "
             "static table, ~0.1 ms per prompt; the contextual int8 MiniLM costs ~12 ms per "
             "prompt and is cached on disk)")


def _train(args: argparse.Namespace) -> int:
    from switchman.data import check_trainable, load_outcomes
    from switchman.encoders import encoder_by_name
    from switchman.router import new_router

    _require_directory_or_nothing(args.out, "router")
    encoder = encoder_by_name(args.encoder)
    outcomes = load_outcomes(args.data, prices=args.prices)
    check_trainable(outcomes, args.data)
    router = new_router(args.router, encoder=encoder, seed=args.seed)
    router.fit(outcomes, show_progress=True)
    router.training_source_ = str(args.data)
    router.save(args.out)
    log.info("trained %s router on %s: %d models, default cost weight %.4g; saved to %s",
             args.router, args.data, len(router.models), router.default_cost_weight, args.out)
    return 0


def _route(args: argparse.Namespace) -> int:
    from switchman.data import load_prompts, table_writer
    from switchman.eval.sweep import sweep_decisions
    from switchman.router import Router

    write = table_writer(args.out)  # a wrong suffix fails before minutes of embedding
    router = Router.load(args.router)
    unknown = sorted(set(args.models or ()) - set(router.models))
    if unknown:
        raise ValueError(f"--models: {unknown} not in the router at {args.router}; its models: "
                         f"{', '.join(router.models)}")
    if args.prices is not None:
        from switchman.pool import load_price_table

        repriced = router.reprice(load_price_table(args.prices))
        log.info("deciding on %s's prices for %d of %d models", args.prices, len(repriced),
                 len(router.models))
    prompts = load_prompts(args.prompts)
    estimates = router.estimate(prompts["prompt"].tolist(), show_progress=True)
    if args.models:
        estimates = estimates.select_models(args.models)
    decisions = sweep_decisions(estimates, prompts["prompt_id"].tolist(), args.points)
    write(decisions)
    log.info("routed %d prompts at %d operating points to %s",
             len(prompts), decisions["point"].nunique(), args.out)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from switchman.encoders import encoder_by_name
    from switchman.evaluation import run_evaluation

    _require_directory_or_nothing(args.out, "report")
    summary_table = run_evaluation(
        train_path=args.train, test_path=args.test, routers=args.router or ["default"],
        out_dir=args.out, n_points=args.points, prices_path=args.prices, seed=args.seed,
        encoder=encoder_by_name(args.encoder),
    )
    sys.stdout.write(summary_table + "\n")
    return 0


def _require_directory_or_nothing(path: Path, holds: str) -> None:
    """Fail before minutes of training, not at the save, when ``--out`` names a file."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: is a file; --out names the {holds}'s directory")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as exc:  # DataError, RouterLoadError, config errors are these
        parser.exit(2, f"switchman: error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(130, "switchman: interrupted\n")


if __name__ == "__main__":
    raise SystemExit(main())
