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


def positive(text: str) -> float:
    """A number > 0 (NaN refused)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def share(text: str) -> float:
    """A fraction from 0 to 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def count_of_at_least(least: int):  # noqa: ANN201 (an argparse type)
    """An argparse type: a whole number >= ``least``."""

    def count(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"needs at least {least}")
        return value

    return count
