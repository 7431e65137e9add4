"""The stdout sink: one line per event on a terminal, one JSON envelope per line otherwise."""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import ClassVar, Literal, TextIO

import anyio
import anyio.to_thread
from pydantic import ConfigDict, Field

from watcher.errors import SinkDisabled, SinkUnavailable
from watcher.events import BaseEvent
from watcher.sinks import SinkBase, SinkConfig

from ._format import format_line

__all__ = ["StdoutConfig", "StdoutSink"]


class StdoutConfig(SinkConfig):
    """A stdout sink's keys, besides the routing and retry keys every sink has.

    ``json``: ``true`` writes each event's JSON envelope on its own line (JSON Lines), ``false``
    a readable line, and unset (the default) picks JSON Lines when the stream is not a terminal
    (a pipe, a file, a log collector) and readable lines when it is. ``stream`` is ``"stdout"``
    or ``"stderr"``.
    """

    # The key is `json`, but a field of that name would shadow BaseModel.json().
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    json_: bool | None = Field(default=None, alias="json", strict=True)
    stream: Literal["stdout", "stderr"] = "stdout"


class StdoutSink(SinkBase):
    """Writes each event to stdout or stderr, flushed per event.

    Writes run in a worker thread, so a reader that stops reading a pipe blocks that thread and
    never the event loop. ``stream`` replaces the standard stream (tests, embedding
    applications); by default the sink looks up ``sys.stdout`` or ``sys.stderr`` at each send,
    so it follows a redirection made after it was built. Colour is used only on a terminal and
    never when ``NO_COLOR`` is set.
    """

    config_model: ClassVar[type[StdoutConfig]] = StdoutConfig
    config: StdoutConfig

    def __init__(self, config: StdoutConfig, *, stream: TextIO | None = None) -> None:
        super().__init__(config)
        self._stream = stream
        # One writer thread at a time keeps lines whole and in order, and bounds how many
        # threads a blocked pipe can hold.
        self._limiter = anyio.CapacityLimiter(1)
        self._lock = threading.Lock()

    def _target(self) -> TextIO:
        if self._stream is not None:
            return self._stream
        return sys.stderr if self.config.stream == "stderr" else sys.stdout

    async def send(self, event: BaseEvent) -> None:
        """Write ``event`` as one line and flush it."""
        stream = self._target()
        try:
            # A blocked pipe keeps the thread; cancelling the send (shutdown) abandons it
            # rather than waiting for a reader that may never come back.
            await anyio.to_thread.run_sync(
                self._write, stream, event, limiter=self._limiter, abandon_on_cancel=True
            )
        except (BrokenPipeError, ValueError) as exc:
            # ValueError: "I/O operation on closed file". Either way no reader will come back.
            raise SinkDisabled(
                f"{self.config.stream} is closed ({type(exc).__name__}); nothing reads it any more",
                sink=self.name,
            ) from exc
        except OSError as exc:
            raise SinkUnavailable(
                f"cannot write to {self.config.stream}: {exc.strerror or type(exc).__name__}",
                sink=self.name,
            ) from exc

    def _write(self, stream: TextIO, event: BaseEvent) -> None:
        as_json = self.config.json_
        tty = _isatty(stream)
        if as_json is None:
            as_json = not tty
        if as_json:
            line = event.to_json()
            fallback = json.dumps(event.envelope(), separators=(",", ":"), ensure_ascii=True)
        else:
            line = format_line(event, colour=tty and not os.environ.get("NO_COLOR"))
            fallback = line.encode("ascii", "replace").decode("ascii")
        with self._lock:
            try:
                stream.write(line + "\n")
            except UnicodeEncodeError:
                # A stream that cannot encode the text (a non-UTF-8 locale): the same JSON with
                # \u escapes, or the line with "?" in place of what it cannot show. The stream
                # encodes the whole text before writing any of it, so nothing was written yet.
                stream.write(fallback + "\n")
            stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
