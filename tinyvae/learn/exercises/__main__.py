"""``python -m tinyvae.exercises my_answers.py``: check every exercise defined in that file."""

import sys

from .checker import check_all


def main(argv=None):
    """``python -m tinyvae.exercises my_answers.py``: check every exercise defined in that file."""
    import importlib.util  # noqa: PLC0415

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tinyvae.exercises path/to/my_answers.py")
        return 2
    spec = importlib.util.spec_from_file_location("learner_answers", argv[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = check_all(module)
    print(summary)
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
