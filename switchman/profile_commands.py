"""The CLI of models as profiles: ``profile select``, ``profile add``, ``models``.

``switchman.cli`` calls :func:`register`; each subcommand sets ``func(args) -> exit code``
and raises ``ValueError`` / ``OSError`` for user mistakes, which the CLI prints as one
``switchman: error:`` line. Heavy imports happen inside the functions so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    """Add ``profile`` (with ``select`` and ``add``) and ``models`` to the CLI."""
    profile = commands.add_parser(
        "profile", help="add models the router never saw, from their answers on a few prompts")
    actions = profile.add_subparsers(dest="profile_command", required=True, metavar="ACTION")

    select = actions.add_parser(
        "select", help="write the training prompts that tell the most about a new model")
    select.add_argument("--router", required=True, type=Path, help="trained router directory")
    select.add_argument("--n", required=True, type=int, help="how many prompts")
    select.add_argument("--out", required=True, type=Path,
                        help="prompts table to write (prompt_id, prompt): .parquet, .csv, .jsonl")
    select.set_defaults(func=_select)

    add = actions.add_parser(
        "add", help="add the models of an outcomes table to a router by profile (no refit)")
    add.add_argument("--router", required=True, type=Path, help="router directory to extend")
    add.add_argument("--outcomes", required=True, type=Path,
                     help="outcomes of the new model(s), any supported format, on any prompts")
    add.add_argument("--out", required=True, type=Path,
                     help="directory of the extended router (it also holds each added "
                          "model's profile file, profiles/<model>.json, for a serving "
                          "configuration's routers[].profiles); or FILE.json: write only "
                          "the profile file of the table's one model")
    add.add_argument("--prices", type=Path,
                     help="price table (prices.json shape): the new models' prices, and "
                          "dollars for rows without cost_usd")
    add.add_argument("--replace", action="store_true",
                     help="profile a model the router already has anew (default: an error)")
    add.set_defaults(func=_add)

    models = commands.add_parser(
        "models", help="list a router's models: known from training or a profile, prices")
    models.add_argument("--router", required=True, type=Path, help="router directory")
    models.set_defaults(func=_models)


def _select(args: argparse.Namespace) -> int:
    from switchman.data import table_writer
    from switchman.router import Router

    write = table_writer(args.out)
    selected = Router.load(args.router).select_prompts(args.n)
    write(selected)
    log.info("selected %d training prompts to %s", len(selected), args.out)
    return 0


def _add(args: argparse.Namespace) -> int:
    from switchman.data import load_outcomes
    from switchman.pool import load_price_table
    from switchman.profile_file import write_profile_file
    from switchman.router import Router

    alone = args.out.suffix == ".json"  # one profile file, no router directory
    if alone and args.out.is_dir():
        raise ValueError(f"{args.out}: is a directory; a profile file is written to a .json "
                         "file (or give a directory that does not end in .json)")
    if not alone and args.out.exists() and not args.out.is_dir():
        raise ValueError(f"{args.out}: is a file; --out names the router's directory "
                         "(or a .json profile file)")
    if args.out.resolve() == args.router.resolve():
        raise ValueError(f"{args.out}: --out must differ from --router (the router it "
                         "extends is left as it was)")
    prices = load_price_table(args.prices) if args.prices else None
    started = time.perf_counter()
    router = Router.load(args.router)
    outcomes = load_outcomes(args.outcomes, prices=prices, complete=False)
    models = sorted(str(m) for m in outcomes["model"].unique())
    if alone and len(models) != 1:
        raise ValueError(f"--out {args.out}: a profile file holds one model and "
                         f"{args.outcomes} has {len(models)} ({', '.join(models)}); give a "
                         "directory to --out, which holds a profile file per model")
    added = router.add_profiles(outcomes, source=str(args.outcomes), prices=prices,
                                replace=args.replace)
    if alone:
        write_profile_file(args.out, router.profile_file(added[0]))
    else:
        router.save(args.out)
    log.info("added %s from %s in %.2f s; saved to %s", ", ".join(added), args.outcomes,
             time.perf_counter() - started, args.out)
    return 0


def _models(args: argparse.Namespace) -> int:
    from switchman.router import Router

    rows = Router.load(args.router).describe_models()
    header = ["model", "known from", "source", "prompts", "$/Mtok in", "$/Mtok out", "anchors"]
    table = [[r["model"], r["known_from"], r["source"],
              "-" if r["prompts"] is None else str(r["prompts"]),
              f"{r['input_per_mtok']:.4g}", f"{r['output_per_mtok']:.4g}",
              ", ".join(r["anchors"]) or "-"] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    for line in [header, *table]:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                         .rstrip() + "\n")
    return 0
