"""An append-only JSON Lines file with size-based rotation, written from worker threads.

Blocking by design: the sink calls it through ``anyio.to_thread.run_sync``. Each line goes to
the file with unbuffered writes, so it is on its way to the disk when ``append`` returns (and on
the disk itself with ``fsync``). A line is never split: rotation happens between lines, a line
larger than ``max_bytes`` gets a file of its own, and a write that fails part way is cut back
off the file.
"""

from __future__ import annotations

import contextlib
import os
import threading
from io import FileIO
from pathlib import Path

__all__ = ["DEFAULT_MODE", "JsonLinesFile"]

#: Permission bits of a new log file: readable and writable by its owner only, since events
#: carry job names, metadata and error messages that are nobody else's business.
DEFAULT_MODE = 0o600


class JsonLinesFile:
    """``path`` opened for appending whole lines; rotates to ``path.1`` ... ``path.<backups>``.

    With ``max_bytes`` 0 the file grows without bound. The file is reopened when something else
    moved or removed it (logrotate, an operator), so lines never go to a file nobody reads.
    Thread-safe: one lock guards the handle and the rotation.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 0,
        backups: int = 5,
        fsync: bool = False,
        mode: int = DEFAULT_MODE,
    ):
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        #: Permission bits of a file this writer creates (the first one, or after rotation).
        self.mode = mode
        self._file: FileIO | None = None
        self._lock = threading.Lock()

    def backup_path(self, number: int) -> Path:
        """Where the ``number``-th newest rotated file lives: ``events.jsonl.1`` is the newest."""
        return self.path.with_name(f"{self.path.name}.{number}")

    def append(self, line: bytes) -> bool:
        """Write ``line`` (ending in a newline) at the end of the file; True when it rotated.

        Raises OSError when the line could not be written; the file then holds none of it.
        """
        with self._lock:
            file = self._current()
            size = os.fstat(file.fileno()).st_size
            rotated = False
            if self.max_bytes > 0 and size > 0 and size + len(line) > self.max_bytes:
                self._rotate()
                file, size, rotated = self._open(), 0, True
            self._write_all(file, line, size)
            return rotated

    def close(self) -> None:
        """Close the file; a later ``append`` opens it again."""
        with self._lock:
            self._close()

    def _current(self) -> FileIO:
        file = self._file
        if file is not None:
            try:
                on_disk = os.stat(self.path)
            except FileNotFoundError:
                on_disk = None
            mine = os.fstat(file.fileno())
            if on_disk is not None and (on_disk.st_dev, on_disk.st_ino) == (
                mine.st_dev,
                mine.st_ino,
            ):
                return file
            self._close()
        return self._open()

    def _open(self) -> FileIO:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.path, flags | os.O_EXCL, self.mode)
        except FileExistsError:
            # A file that is already there keeps the mode its owner gave it.
            fd = os.open(self.path, flags)
        else:
            if hasattr(os, "fchmod"):  # not on Windows before 3.13, where modes mean little
                # Exactly the configured mode: the umask must not widen or narrow a choice
                # written in the config.
                os.fchmod(fd, self.mode)
        # Unbuffered: a line is handed to the OS before append() returns, never held in Python.
        self._file = FileIO(fd, "a")
        return self._file

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def _write_all(self, file: FileIO, line: bytes, start: int) -> None:
        view = memoryview(line)
        try:
            while view:
                written = file.write(view)
                view = view[written or 0 :]
            if self.fsync:
                os.fsync(file.fileno())
        except OSError:
            # A disk that filled up half way leaves half a line; cut it so the next line (the
            # retry of this one) starts on a line of its own.
            with contextlib.suppress(OSError):
                file.truncate(start)
            raise

    def _rotate(self) -> None:
        self._close()
        for number in range(self.backups - 1, 0, -1):
            older = self.backup_path(number)
            if older.exists():
                os.replace(older, self.backup_path(number + 1))
        os.replace(self.path, self.backup_path(1))
        if self.fsync:
            _fsync_directory(self.path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the renames durable too, where the platform can (POSIX; not Windows)."""
    flag = getattr(os, "O_DIRECTORY", None)
    if flag is None:
        return
    fd = os.open(directory, os.O_RDONLY | flag)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
