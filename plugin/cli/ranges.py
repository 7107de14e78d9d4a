"""Range checks of numeric options, made before any work: a usage error (exit 2) with a message.

argparse turns ``nan``, ``inf`` and ``-1`` into floats and ints without a word; a command checks each
number it takes here, so that none is silently accepted, none ends in a traceback deep in the solver,
and none asks for more than the machine has (100,000 CP-SAT workers, a hundred million seeds).
"""

from __future__ import annotations

import math
from typing import Any


def number_in(option: str, value: float | None, low: float, high: float, *, above_low: bool = False) -> str:
    """``""`` if ``value`` (None: not given) is a finite number in ``[low, high]`` (``(low, high]`` with
    ``above_low``), else the usage message."""
    if value is None or (math.isfinite(value) and (low < value if above_low else low <= value) and value <= high):
        return ""
    return f"{option} must be a number in {'(' if above_low else '['}{low:g}, {high:g}], not {value:g}"


def seconds_in(option: str, value: float | None, high: float) -> str:
    """A duration in ``(0, high]`` seconds."""
    if value is None or (math.isfinite(value) and 0 < value <= high):
        return ""
    return f"{option} must be a number of seconds in (0, {high:g}], not {value:g}"


def integer_in(option: str, value: int | None, low: int, high: int) -> str:
    """An integer in ``[low, high]``."""
    if value is None or low <= value <= high:
        return ""
    return f"{option} must be an integer in [{low}, {high}], not {value}"


def first(*problems: str) -> str:
    """The first of several checks that found a problem, or ``""``."""
    return next((p for p in problems if p), "")


def solver_options(args: Any) -> str:
    """``--time-limit``, ``--workers`` and ``--seed`` (each may be absent: None) in the ranges a policy file's
    solver limits allow, as every command that solves checks them."""
    from gpupolicy.policy.policyfile.model import MAX_SEED, MAX_TIME_LIMIT_SECONDS, MAX_WORKERS

    return first(
        seconds_in("--time-limit", args.time_limit, MAX_TIME_LIMIT_SECONDS),
        integer_in("--workers", args.workers, 1, MAX_WORKERS),
        integer_in("--seed", args.seed, 0, MAX_SEED),
    )
