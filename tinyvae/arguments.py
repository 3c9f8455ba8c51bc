"""One convention for every command-line flag of tinyvae.

* No abbreviations: ``--epoch 2`` is an unknown flag, not ``--epochs 2`` (``allow_abbrev=False``
  on every parser and subparser, including those other modules add).
* A value that does not convert is refused as ``argument --flag: expected WHAT, got 'VALUE'``:
  never argparse's ``invalid _positive value`` (the name of a Python function).

``harden(parser)`` applies both to a parser and all its subparsers; the converters below are the
ones the subcommands use.
"""

from __future__ import annotations

import argparse
import functools
import math


def _typed(text, kind, ok, what):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def integer(text):
    return _typed(text, int, lambda v: True, "an integer")


def positive_int(text):
    return _typed(text, int, lambda v: v >= 1, "an integer >= 1")


def count(text):
    return _typed(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text):
    return _typed(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def non_negative_float(text):
    return _typed(text, float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


_WHAT = {int: "an integer", float: "a number"}


def _explained(convert):
    """``convert`` with its ValueError/TypeError turned into 'expected ..., got ...' (argparse prints it)."""
    if getattr(convert, "_explained", False) or not callable(convert):
        return convert
    what = _WHAT.get(convert) or (convert.__doc__ or "").strip().split("\n")[0].rstrip(".") or "a valid value"

    @functools.wraps(convert)
    def wrapper(text):
        try:
            return convert(text)
        except (TypeError, ValueError) as err:
            if isinstance(err, argparse.ArgumentTypeError):
                raise
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None

    wrapper._explained = True
    return wrapper


def harden(parser):
    """No abbreviations and explained conversion errors, for ``parser`` and every subparser under it."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if action.type is not None:
            action.type = _explained(action.type)
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                harden(sub)
    return parser
