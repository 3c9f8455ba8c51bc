"""The ``tinyvae`` command: one subcommand per job, each defined in its own module.

Each module listed in ``COMMANDS`` provides ``add_parser(subparsers)`` (which registers its flags)
and the function the parser dispatches to via ``set_defaults(func=...)``. Unknown flags and
impossible values are refused with a one-line message naming them, the closest valid flag where
one is near, and one line of usage (exit status 2; see ``arguments.Parser``).
"""

from __future__ import annotations

import importlib
import os
import sys

from .. import arguments
from ..errors import UserError, explain

# subcommand -> module that defines it; imported lazily so `tinyvae gradcheck` starts fast.
COMMANDS = {
    "train": "tinyvae.run.train",
    "evaluate": "tinyvae.evaluation.command",
    "sample": "tinyvae.evaluation.plots",
    "plot": "tinyvae.evaluation.plots",
    "gradcheck": "tinyvae.run.cli",
}


def add_parser(subparsers):
    p = subparsers.add_parser("gradcheck", help="check every backward pass against central differences (float64)")
    p.add_argument("--seed", type=arguments.count, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--verbose", "-v", action="store_true", help="print every parameter, not only the summary")
    p.set_defaults(func=gradcheck_command)


def gradcheck_command(args):
    import time  # noqa: PLC0415

    from ..learn.gradcheck import standard_suite  # noqa: PLC0415

    start = time.perf_counter()
    reports = standard_suite(args.seed)
    print(f"{'function':<44} {'params':>6} {'worst rel. error':>17}  result")
    for rep in reports:
        print(f"{rep.label:<44} {len(rep.results):>6} {rep.max_error:>17.2e}  {'ok' if rep.passed else 'FAIL'}")
    failed = [rep for rep in reports if not rep.passed]
    for rep in failed if not args.verbose else reports:
        print("\n" + str(rep))
    worst = max(rep.max_error for rep in reports)
    print(f"\n{len(reports) - len(failed)}/{len(reports)} passed, worst relative error {worst:.2e} "
          f"(tolerance {reports[0].tol:.0e}), {time.perf_counter() - start:.2f} s")
    return 1 if failed else 0


def build_parser():
    parser = arguments.Parser(prog="tinyvae", description="A Variational Autoencoder in NumPy, by hand.",
                              allow_abbrev=False)  # its subparsers are Parsers too: short errors, suggestions
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen = set()
    for name, module in COMMANDS.items():
        if module in seen:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name == module:  # that job is not part of this build yet
                continue
            raise
        seen.add(module)
        mod.add_parser(subparsers)
    return arguments.harden(parser)  # every subcommand: no abbreviated flags, conversion errors explained


def main(argv=None):
    """Run one command; what goes wrong is printed as ``tinyvae COMMAND: error: ...``, never as a traceback."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 2
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away is noticed here, not in Python's flush at exit
        return status
    except BrokenPipeError:  # `tinyvae gradcheck | head`: the reader has what it wanted
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose pipe closed
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UserError, OSError) as err:  # bad input tinyvae found, or a file the system refused
        print(f"tinyvae {_command(argv)}: error: {explain(err)}", file=sys.stderr)
        return 1
    except MemoryError as err:
        print(f"tinyvae {_command(argv)}: error: out of memory ({err}); try a smaller model or --batch-size",
              file=sys.stderr)
        return 1


def _command(argv):
    argv = sys.argv[1:] if argv is None else argv
    return next((a for a in argv if a in COMMANDS), "").strip() or "command"


def _silence_stdout():
    """Point stdout at /dev/null, so that the interpreter's last flush of it cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured in tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
