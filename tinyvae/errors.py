"""What the user is told when something goes wrong: errors whose message is the whole story.

Two kinds of failure reach a person at the command line, and both must arrive as a sentence, not
a Python traceback:

* ``UserError``: a bad input that tinyvae detected itself (a config, a checkpoint, a data file).
  Its message already names what was wrong, what was given and what was expected.
* ``OSError``: the operating system refused (permissions, a full disk, a read-only file system, a
  path through a file). ``explain`` is the one place that turns these into a sentence naming the
  file, what happened and what to do; code that writes a run's files wraps the write in
  ``file_errors(...)`` so the sentence can add what is intact and how to continue.

The command line (``tinyvae.cli.main``) prints either kind as ``tinyvae COMMAND: error: ...``.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path


class UserError(Exception):
    """An error whose message is written for the user; the command line prints it without a traceback."""


class InputError(UserError, ValueError):
    """A bad value from the user (an environment variable, a setting), named in the message."""


class FileError(UserError, OSError):
    """An operating-system error on a named file, explained (raised by ``file_errors``)."""

    def __init__(self, message, code=None, path=None):
        super().__init__(message)
        self.code, self.path = code, path

    def __str__(self):
        return self.args[0]


# errno -> (what happened, what to do about it)
_EXPLAIN = {
    errno.EACCES: ("permission denied", "check its permissions (ls -ld) or use a location you can {access}"),
    errno.EPERM: ("operation not permitted", "check its permissions (ls -ld) or use a location you can {access}"),
    errno.ENOSPC: ("no space left on the device", "free some space"),
    errno.EROFS: ("the file system is read-only", "use a writable location"),
    errno.EISDIR: ("it is a folder, not a file", "name a file"),
    errno.EEXIST: ("it already exists", "choose a new name"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.EIO: ("input/output error (a failing disk or a lost network share?)", "check the device"),
    errno.EFBIG: ("the file is too large for this file system", "use another location"),
}
if hasattr(errno, "EDQUOT"):  # not on every platform
    _EXPLAIN[errno.EDQUOT] = ("disk quota exceeded", "free some space")


def _file_in_path(path):
    """The deepest existing ancestor of ``path`` that is a file (the cause of ENOTDIR), or None."""
    for part in [path, *path.parents]:
        try:
            if part.exists() and not part.is_dir():
                return part
        except OSError:
            return None
    return None


def explain(err, doing=None, path=None):
    """One sentence for an OSError: ``cannot DOING PATH: what happened; what to do`` (any other error: its message).

    ``doing`` is a verb phrase ("write", "create the run folder"); ``path`` the file concerned
    (default: the error's own ``filename``). A FileError, or an OSError without an errno (raised
    by tinyvae with its own message), is returned as its message.
    """
    if not isinstance(err, OSError) or isinstance(err, FileError) or (err.errno is None and doing is None):
        return str(err)
    if err.errno is None:  # an OSError raised with a message of its own
        return f"cannot {doing} {path}: {err}"
    path = Path(path if path is not None else err.filename) if (path or err.filename) else None
    head = f"cannot {doing or 'use'} {path}" if path is not None else f"cannot {doing or 'continue'}"
    blocker = _file_in_path(path.parent) if path is not None and err.errno in (errno.ENOTDIR, errno.EEXIST) else None
    if err.errno == errno.ENOTDIR or blocker is not None:  # a folder in the path is really a file
        what = f"{blocker} is a file, not a folder" if blocker else "a part of the path is a file, not a folder"
        return f"{head}: {what}; choose a path whose folders are folders"
    what, fix = _EXPLAIN.get(err.errno, (err.strerror or str(err), None))
    access = "read" if doing and doing.startswith("read") else "write to"
    return f"{head}: {what}" + (f"; {fix.format(access=access)}" if fix else "")


@contextmanager
def file_errors(doing, path, after=None):
    """Turn an OSError raised inside into a FileError: ``explain(err, doing, path)``, then ``after``.

    ``after``: a sentence (or a function returning one, evaluated only on failure) saying what is
    intact and how to continue, e.g. "The last checkpoint ... is intact; resume with: ...".
    """
    try:
        yield
    except FileError:
        raise
    except OSError as err:
        text = explain(err, doing, path)
        more = after() if callable(after) else after
        raise FileError(text + (f". {more}" if more else ""), err.errno, path) from err


def process_alive(pid):
    """Whether a process with this id exists (a process of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
