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
from switchman.arguments import count_of_at_least, model_names
from switchman.label.commands import register as register_label
from switchman.learning.commands import register as register_replay
from switchman.progress import showing

log = logging.getLogger("switchman")

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
    train.add_argument("--force", action="store_true",
                       help="overwrite a router already saved in --out")
    train.add_argument("--prices", type=Path,
                       help="price table (prices.json shape) for costs a source lacks; the "
                            "router also decides on these prices for the models it names")
    _add_seed_and_encoder_options(train)
    train.set_defaults(func=_train)

    route = commands.add_parser("route", help="route prompts with a trained router")
    route.add_argument("--router", required=True, type=Path, help="trained router directory")
    route.add_argument("--prompts", required=True, type=Path,
                       help="prompts table with prompt_id and prompt (other columns ignored)")
    route.add_argument("--out", required=True, type=Path,
                       help="decisions table to write: .parquet (the contract's), .csv or .jsonl")
    route.add_argument("--points", type=count_of_at_least(2), default=41,
                       help="operating points from cheapest to best quality (default 41)")
    route.add_argument("--models", type=model_names, metavar="A,B,C",
                       help="route among these of the router's models only (default: all)")
    route.add_argument("--prices", type=Path,
                       help="price table (prices.json shape) to decide on for the models it "
                            "names (default: the prices the router was trained with)")
    route.set_defaults(func=_route)

    evaluate = commands.add_parser(
        "eval", help="evaluate routers on a test table (trained here, or a saved router "
                     "directory) and write a report",
        description="Evaluate routers on a test outcomes table and write summary.json, "
                    "decisions.parquet and a report (report.html, cost_quality.png). Either "
                    "train them here (--train, with --test or --split) or evaluate the router "
                    "you will serve (--router-dir, with --test), without retraining.")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--train", type=Path, help="training outcomes table: train here")
    source.add_argument("--router-dir", type=Path, metavar="DIR",
                        help="a saved router (from train or profile add) to evaluate as is")
    evaluate.add_argument("--test", type=Path, help="test outcomes table")
    evaluate.add_argument("--split", type=_fraction, metavar="FRACTION",
                          help="with --train and no --test: hold out this share of its "
                               "prompts (seeded by --seed, split by prompt text) as the test")
    evaluate.add_argument("--router", action="append", choices=ROUTER_NAMES,
                          help="with --train: router(s) to train; repeatable (default: default)")
    evaluate.add_argument("--out", required=True, type=Path, help="report directory")
    evaluate.add_argument("--points", type=count_of_at_least(2), default=41,
                          help="operating points per router (default 41)")
    evaluate.add_argument("--prices", type=Path,
                          help="price table for costs a source lacks (with --train, the "
                               "routers trained also decide on these prices)")
    _add_seed_and_encoder_options(evaluate, fixed_by="--router-dir")
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
    register_label(commands)
    return parser


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("needs a share strictly between 0 and 1, e.g. 0.3")
    return value


def _add_seed_and_encoder_options(command: argparse.ArgumentParser,
                                  fixed_by: str | None = None) -> None:
    """What a training run is reproduced from, besides its data: the seed and the encoder.

    ``fixed_by`` names an option that brings a trained router, whose seed and encoder are
    its own: the defaults are then left unset, so giving either with it can be refused.
    """
    from switchman.encoders import DEFAULT_ENCODER, KNOWN_ENCODERS

    unless = f"; not with {fixed_by}, whose router has its own" if fixed_by else ""
    command.add_argument(
        "--seed", type=int, default=None if fixed_by else 0,
        help="seed of the estimators' folds, clusters and initial values (default 0): the "
             "same data, seed and encoder train the same router"
             f"{'; also seeds --split' if fixed_by else ''}{unless}")
    command.add_argument(
        "--encoder", default=None if fixed_by else DEFAULT_ENCODER, metavar="NAME",
        help=f"prompt encoder: {', '.join(KNOWN_ENCODERS)} (default {DEFAULT_ENCODER}: a "
             "static table, ~0.1 ms per prompt; the contextual int8 MiniLM costs ~12 ms per "
             f"prompt and is cached on disk){unless}")


def _train(args: argparse.Namespace) -> int:
    from switchman.data import check_trainable, load_outcomes
    from switchman.encoders import encoder_by_name
    from switchman.pool import load_price_table
    from switchman.router import new_router

    _require_directory_or_nothing(args.out, "router")
    if (args.out / "router.json").exists() and not args.force:
        raise ValueError(f"{args.out}: already holds a router; pass --force to overwrite it")
    encoder = encoder_by_name(args.encoder)
    prices = load_price_table(args.prices) if args.prices else None
    outcomes = load_outcomes(args.data, prices=prices)
    check_trainable(outcomes, args.data)
    router = new_router(args.router, encoder=encoder, seed=args.seed)
    router.fit(outcomes, prices=prices, show_progress=True)
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
    from switchman.encoders import DEFAULT_ENCODER, encoder_by_name
    from switchman.evaluation import evaluate, load_router_dir, train_here

    _check_eval_options(args)
    _require_directory_or_nothing(args.out, "report")
    if args.router_dir is not None:
        evaluated = load_router_dir(args.router_dir, args.test, args.prices)
    else:
        evaluated = train_here(args.train, args.test, args.split, args.router or ["default"],
                               0 if args.seed is None else args.seed,
                               encoder_by_name(args.encoder or DEFAULT_ENCODER), args.prices)
    test_source = args.train if args.test is None else args.test
    sys.stdout.write(evaluate(evaluated, test_source, args.out, args.points) + "\n")
    return 0


def _check_eval_options(args: argparse.Namespace) -> None:
    """The combinations ``eval`` accepts: a router comes from --train (tested on --test or
    a --split of it) or from --router-dir (tested on --test, with its own seed and encoder)."""
    if args.router_dir is not None:
        given = [flag for flag, value in (("--split", args.split), ("--router", args.router),
                                          ("--seed", args.seed), ("--encoder", args.encoder))
                 if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: not with --router-dir; {args.router_dir} "
                             "is evaluated as trained, with its own seed and encoder")
        if args.test is None:
            raise ValueError(f"--router-dir {args.router_dir}: name the table to evaluate it "
                             "on with --test")
    elif (args.test is None) == (args.split is None):
        raise ValueError("--train: give exactly one of --test TABLE or --split FRACTION "
                         "(hold out a share of the training table's prompts)")


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
        with showing():
            return int(args.func(args))
    except (ValueError, OSError) as exc:  # DataError, RouterLoadError, config errors are these
        parser.exit(2, f"switchman: error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(130, "switchman: interrupted\n")


if __name__ == "__main__":
    raise SystemExit(main())
