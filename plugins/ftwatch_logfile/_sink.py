"""The logfile sink: every event's JSON envelope on its own line, appended to a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Self

import anyio
import anyio.to_thread
import structlog
from pydantic import Field, field_serializer, field_validator, model_validator

from watcher.errors import ConfigError, SinkUnavailable
from watcher.events import BaseEvent
from watcher.sinks import SinkBase, SinkConfig

from ._writer import DEFAULT_MODE, JsonLinesFile

__all__ = ["LogfileConfig", "LogfileSink"]

log = structlog.get_logger(__name__)


class LogfileConfig(SinkConfig):
    """A logfile sink's keys, besides the routing and retry keys every sink has.

    ``path`` is the JSON Lines file (its directory must exist). ``max_bytes`` above 0 rotates
    the file once the next line would take it past that size: ``events.jsonl`` becomes
    ``events.jsonl.1``, ``.1`` becomes ``.2`` and so on, keeping ``backups`` old files.
    ``fsync`` makes each line durable on disk before the event counts as delivered (slower).
    ``mode`` is the permission bits of a file the sink creates, written as an octal string
    (``"0600"``, the default: the owner only; ``"0640"`` lets the group read); a file that
    already exists keeps its mode.
    """

    path: Path
    # Strict: "5" or "yes" in the file is a mistake to report, not a value to guess at.
    max_bytes: int = Field(default=0, ge=0, strict=True)
    backups: int = Field(default=5, ge=0, strict=True)
    fsync: bool = Field(default=False, strict=True)
    mode: int = DEFAULT_MODE

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, value: object) -> object:
        # TOML's 0o640 and a decimal 640 arrive as the same kind of number: only a string says
        # unambiguously that the digits are octal.
        example = 'expected the mode as an octal string such as "0600" or "0640"'
        if not isinstance(value, str):
            raise ValueError(example)
        text = value.strip().lower().removeprefix("0o")
        if not text or any(c not in "01234567" for c in text) or int(text, 8) > 0o777:
            raise ValueError(f"{example}, got {value!r}")
        mode = int(text, 8)
        if not mode & 0o200:
            # The sink reopens the file after logrotate moves it: it must stay writable.
            raise ValueError(
                f"expected a mode that lets the owner write (such as 0600), got {value!r}"
            )
        return mode

    @field_serializer("mode")
    def _show_octal(self, mode: int) -> str:
        return f"{mode:04o}"

    @field_validator("path", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        # Path("") would quietly mean the current directory.
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a file path such as 'events.jsonl'")
        return value

    @field_validator("path")
    @classmethod
    def _expand_home(cls, path: Path) -> Path:
        return path.expanduser()

    @model_validator(mode="after")
    def _rotation_keeps_lines(self) -> Self:
        if self.max_bytes > 0 and self.backups < 1:
            raise ValueError(
                "backups must be at least 1 when max_bytes is set: rotating without a backup "
                "file would throw events away"
            )
        return self


class LogfileSink(SinkBase):
    """Appends each event's envelope (``event.to_json()``) as one line, flushed per event.

    Writes run in a worker thread, one at a time, so lines stay whole and in the order sent.
    The directory is checked when the sink is built, so a wrong ``path`` is reported at
    startup as a :class:`~watcher.errors.ConfigError`; a write that fails later (the directory
    was removed, the disk is full) raises :class:`~watcher.errors.SinkUnavailable` and is
    retried.
    """

    config_model: ClassVar[type[LogfileConfig]] = LogfileConfig
    config: LogfileConfig

    def __init__(self, config: LogfileConfig) -> None:
        super().__init__(config)
        _check_path(config.name, config.path)
        self._file = JsonLinesFile(
            config.path,
            max_bytes=config.max_bytes,
            backups=config.backups,
            fsync=config.fsync,
            mode=config.mode,
        )
        self._limiter = anyio.CapacityLimiter(1)

    @property
    def path(self) -> Path:
        """The file events are appended to."""
        return self.config.path

    async def send(self, event: BaseEvent) -> None:
        """Append ``event`` as one JSON line; return once it is written (and synced if set)."""
        line = (event.to_json() + "\n").encode()
        try:
            rotated = await anyio.to_thread.run_sync(self._file.append, line, limiter=self._limiter)
        except OSError as exc:
            raise SinkUnavailable(
                f"cannot write {self.path}: {_reason(self.path, exc)}",
                sink=self.name,
            ) from exc
        if rotated:
            log.info("logfile_rotated", sink=self.name, path=str(self.path))

    async def aclose(self) -> None:
        """Close the file."""
        await anyio.to_thread.run_sync(self._file.close, limiter=self._limiter)


def _check_path(name: str, path: Path) -> None:
    """Refuse, at startup, a path the sink could never write to."""
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(
            f"logfile sink {name!r}: the directory {parent} of path {path} does not exist; "
            "create it or choose another path",
            key="path",
        )
    if path.is_dir():
        raise ConfigError(
            f"logfile sink {name!r}: path {path} is a directory; give a file name such as "
            f"{path / 'events.jsonl'}",
            key="path",
        )
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise ConfigError(
            f"logfile sink {name!r}: {target} is not writable by this user", key="path"
        )


def _reason(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) and not path.parent.is_dir():
        return f"the directory {path.parent} does not exist any more"
    return exc.strerror or type(exc).__name__
