"""Argument types the subcommands share, so a model list or an amount reads the same in
every command (argparse shows an ``ArgumentTypeError``'s text as the error)."""

from __future__ import annotations

import argparse


def model_names(text: str) -> list[str]:
    """``a,b,c`` as model names: stripped, empty ones dropped, repeats collapsed."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise argparse.ArgumentTypeError("name at least one model")
    return names


def non_negative(text: str) -> float:
    """A number >= 0 (NaN refused)."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value
