"""One daemon per state file: an exclusive lock on the file itself.

The lock is taken on the state file's inode (``flock`` on an open descriptor of it), not on a
name beside it, so a second daemon reaching the same file through a symlink, a hard link or a
bind mount is refused too. ``fcntl`` is imported only when a lock is taken, so ``import
watcher`` works on Windows (where the daemon's lock is not available).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError
from .schema import create_private

__all__ = ["exclusive"]


@contextmanager
def exclusive(state: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the state file for as long as the daemon runs.

    Two daemons on one state file would each deliver every event; the second is refused. The
    kernel drops the lock when the process dies, so a kill -9 never leaves it stale. The file
    (and a new directory for it, 0700) is created first, private, if missing.

    SQLite's own locks are POSIX record locks, which ``flock`` does not touch; but closing any
    descriptor of the file drops a process's POSIX locks, so release this lock only after the
    store is closed (an exit stack does, entered first).
    """
    import fcntl  # here, not at the top: POSIX only (see the module's docstring)

    path = state.expanduser()
    try:
        create_private(path)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise StoreError(
            f"cannot create or write {path} ({exc.strerror or type(exc).__name__}); make its"
            " directory writable by this user, or point state.path at another file"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"{state} is in use by another ftwatch process; stop it, or point state.path"
                " at another file"
            ) from None
        yield
    finally:
        os.close(fd)
