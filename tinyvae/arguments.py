"""One convention for every command-line flag of tinyvae.

* No abbreviations: ``--epoch 2`` is an unknown flag, not ``--epochs 2`` (``allow_abbrev=False``
  on every parser and subparser, including those other modules add).
* A value that does not convert is refused as ``argument --flag: expected WHAT, got 'VALUE'``:
  never argparse's ``invalid _positive value`` (the name of a Python function).
* An error is two lines: ``tinyvae train: error: ...`` and one line of usage that says where the
  full list is (``--help``), not the whole usage block. A mistyped flag, subcommand or choice is
  answered with the closest valid one: ``did you mean --epochs?``.

``Parser`` is the parser class (its subparsers inherit it); ``harden(parser)`` applies the first two
points to a parser and all its subparsers; the converters below are the ones the subcommands use.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import math
import re


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


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line of error and one line of usage, with suggestions."""

    def parse_args(self, args=None, namespace=None):
        args, extras = self.parse_known_args(args, namespace)
        if extras:  # name the subcommand whose flags were mistyped, not the top-level parser
            (_chosen_subparser(self, args) or self).error(_unrecognized(self, args, extras))
        return args

    def error(self, message):
        hint = _suggest_choice(self, message)
        self.exit(2, f"{self.prog}: error: {message}{hint}\nusage: {_usage_line(self)}\n")


def _subparsers_action(parser):
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _chosen_subparser(parser, args):
    action = _subparsers_action(parser)
    name = getattr(args, action.dest, None) if action is not None else None
    return action.choices.get(name) if name is not None else None


def _unrecognized(parser, args, extras):
    """'unrecognized arguments: ...', with the closest flag for each mistyped one."""
    target = _chosen_subparser(parser, args) or parser
    names = {s.lstrip("-"): s for a in target._actions for s in a.option_strings if s.startswith("--")}
    guesses = []
    for extra in extras:
        flag = extra.split("=", 1)[0]
        # compared without the dashes, which every flag shares and which would make --colour look like --lr
        close = difflib.get_close_matches(flag.lstrip("-"), names, n=1, cutoff=0.6) if flag.startswith("-") else []
        if close:
            guesses.append((flag, names[close[0]]))
    text = f"unrecognized arguments: {' '.join(extras)}"
    if len(guesses) == 1:
        return text + f"; did you mean {guesses[0][1]}?"
    if guesses:
        return text + "; did you mean " + ", ".join(f"{right} (for {wrong})" for wrong, right in guesses) + "?"
    return text


def _suggest_choice(parser, message):
    """For argparse's "invalid choice: 'X'", the closest valid choice of the flag or subcommand."""
    found = re.search(r"invalid choice: '([^']*)'", message)
    if not found:
        return ""
    value = found.group(1)
    for action in parser._actions:
        if action.choices is not None and value not in action.choices:
            close = difflib.get_close_matches(value, [str(c) for c in action.choices], n=1, cutoff=0.6)
            if close and (action.dest in message or any(s in message for s in action.option_strings)
                          or isinstance(action, argparse._SubParsersAction)):
                return f"; did you mean {close[0]!r}?"
    return ""


def _usage_line(parser):
    """One line: the command, its positional arguments, and where to find every flag."""
    words = [parser.prog]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            words.append(f"{action.metavar or 'COMMAND'} [FLAGS]")
        elif not action.option_strings:
            words.append(action.metavar or action.dest.upper())
    if not _subparsers_action(parser):
        words.insert(1, "[FLAGS]")
    return " ".join(words) + f"  (every flag: {parser.prog} --help)"
