"""``python -m tinyvae.exercises my_answers.py``: check every exercise defined in that file."""

import sys
from pathlib import Path

# Absolute, not ``from .checker``: run as ``python -m tinyvae.exercises`` (the alias tinyvae/__init__.py
# registers), this file's package is named ``tinyvae.exercises``, and a relative import would load a
# second copy of the checker under that name, whose own relative imports (``from .. import solutions``)
# would then look in ``tinyvae`` instead of ``tinyvae.learn``.
from tinyvae.learn.exercises.checker import check_all

USAGE = ("usage: python -m tinyvae.exercises path/to/my_answers.py\n"
         "Checks every exercise function (dense_backward, ..., planar_step) defined in that file and says what "
         "is wrong with each; exit status 0 when all pass.")


def _load(path):
    """The learner's file as a module, or (None, why it could not be run)."""
    import importlib.util  # noqa: PLC0415
    import traceback  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("learner_answers", path)
    if spec is None:
        return None, f"expected a Python file ending in .py, got {str(path)!r}"
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001  (the learner's file failed: say where, without a traceback)
        frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == Path(path)]
        where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
        if isinstance(err, SyntaxError) and err.lineno:
            where = f" (line {err.lineno}: {(err.text or '').strip()})"
        return None, f"running {path} raised {type(err).__name__}: {err}{where}"
    return module, None


def main(argv=None):
    """``python -m tinyvae.exercises my_answers.py``: check every exercise defined in that file."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(argv) != 1:
        print(f"expected one file of answers, got {len(argv)} arguments\n{USAGE}", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"no such file: {argv[0]}" + (" (it is a folder)" if path.is_dir() else "") + f"\n{USAGE}",
              file=sys.stderr)
        return 2
    module, problem = _load(path)
    if module is None:
        print(problem, file=sys.stderr)
        return 2
    summary = check_all(module)
    print(summary)
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
