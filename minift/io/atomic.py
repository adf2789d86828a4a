"""Atomic saving: a checkpoint file is either the old one or the complete new one.

Writing a file in place is not safe: a crash, a full disk or a killed process halfway
leaves a truncated checkpoint, and the previous good one is already gone. Instead::

    1. write everything to a temporary file in the *same directory*
       (``.model.safetensors.<random>.tmp``; the same file system, so step 3 is a rename)
    2. flush Python's buffer and ``os.fsync`` the file: the bytes are on disk
    3. ``os.replace(temporary, path)``: an atomic rename — readers see the old file or the
       new one, never a mix — then fsync the directory so the rename itself is durable

If anything fails before step 3, the temporary file is removed and ``path`` is untouched.
A process killed outright (SIGKILL, power loss) cannot clean up: it may leave a ``.tmp``
file behind, but never a damaged checkpoint.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager, suppress


@contextmanager
def atomic_write(path):
    """Yield a binary file to write; on a clean exit it atomically becomes ``path``.

    An error inside the ``with`` block (or while syncing and renaming) removes the
    temporary file and re-raises; ``path`` keeps its previous content. An output
    directory that does not exist or cannot be written raises an ``OSError`` naming ``path``.
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        file = open(temporary, "xb")  # "x": never clobber; permissions follow the umask like any new file
    except OSError as error:
        raise type(error)(
            error.errno, f"cannot save {path!r}: {error.strerror} (a temporary file is written in its directory first)"
        ) from error
    try:
        with file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):  # a failed cleanup must not hide the error that matters
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make a rename durable (POSIX); elsewhere directories cannot be opened, and need not be."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
