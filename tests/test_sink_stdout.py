"""Tests for the stdout sink (plugins/ftwatch_stdout): readable lines, JSON Lines, threads."""

from __future__ import annotations

import io
import json
import re
import threading
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from ftwatch_stdout import StdoutConfig, StdoutSink, format_line
from watcher.diff import diff
from watcher.errors import SinkDisabled
from watcher.events import BaseEvent, event_from_envelope
from watcher.models import FineTuningJob
from watcher.sinks import sink_plugin

T0 = 1_700_000_000
GREEN, RED, YELLOW, CYAN, RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[36m", "\x1b[0m"
LINE = re.compile(r"\d\d:\d\d:\d\d  (?P<rest>.*)")


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, and counts its flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def isatty(self) -> bool:
        """Claim to be a terminal."""
        return True

    def flush(self) -> None:
        """Count the flush."""
        self.flushes += 1
        super().flush()


class Pipe(Terminal):
    """A text stream that is not a terminal, and counts its flushes."""

    def isatty(self) -> bool:
        """Claim to be a pipe."""
        return False


def _job(**fields: Any) -> FineTuningJob:
    base: dict[str, Any] = {
        "id": "ftjob-abc123",
        "status": "running",
        "created_at": T0,
        "model": "gpt-4o-mini",
        "user_provided_suffix": "x",
    }
    return FineTuningJob.model_validate({**base, **fields})


def _events(**last: Any) -> dict[str, BaseEvent]:
    """The events of a running job reaching ``last``, by type."""
    state, created = diff(None, _job(), source="openai", now=T0 + 5)
    _, ended = diff(state, _job(**last), source="openai", now=T0 + 60)
    return {e.type: e for e in [*created, *ended]}


def _succeeded() -> BaseEvent:
    return _events(status="succeeded", fine_tuned_model="ft:gpt-4o-mini:org:x:1234")[
        "fine_tuning.job.succeeded"
    ]


def _config(**keys: Any) -> StdoutConfig:
    return StdoutConfig.model_validate({"name": "console", "type": "stdout", **keys})


def test_entry_point_finds_the_stdout_sink() -> None:
    """The ``stdout`` entry point resolves to StdoutSink and its config model."""
    plugin = sink_plugin("stdout")
    assert plugin.factory is StdoutSink
    assert plugin.config_model is StdoutConfig


def test_config_reads_json_and_stream_keys() -> None:
    """The config takes ``json`` and ``stream`` keys and refuses an unknown stream."""
    config = _config(json=True, stream="stderr")
    assert config.json_ is True
    assert config.stream == "stderr"
    assert _config().json_ is None
    with pytest.raises(ValidationError, match="stream"):
        _config(stream="stdlog")


async def test_json_lines_when_not_a_terminal() -> None:
    """On a pipe each event is written as exactly its JSON envelope, one per line, flushed."""
    pipe = Pipe()
    events = list(_events(status="succeeded", fine_tuned_model="ft:m").values())
    async with StdoutSink(_config(), stream=pipe) as sink:
        for event in events:
            await sink.send(event)
    lines = pipe.getvalue().split("\n")
    assert lines[-1] == ""
    assert lines[:-1] == [event.to_json() for event in events]
    assert [event_from_envelope(line) for line in lines[:-1]] == events
    assert pipe.flushes == len(events)


async def test_readable_line_on_a_terminal() -> None:
    """On a terminal each event is one readable line with its status change in colour."""
    terminal = Terminal()
    async with StdoutSink(_config(), stream=terminal) as sink:
        await sink.send(_succeeded())
    [line, end] = terminal.getvalue().split("\n")
    assert end == ""
    match = LINE.fullmatch(line)
    assert match is not None, line
    assert match["rest"] == (
        f"succeeded  ftjob-abc123  {GREEN}running → succeeded{RESET}  ft:gpt-4o-mini:org:x:1234 "
        "(source openai)"
    )
    assert terminal.flushes == 1


@pytest.mark.parametrize(
    ("status", "event_type", "colour"),
    [
        ("succeeded", "fine_tuning.job.succeeded", GREEN),
        ("failed", "fine_tuning.job.failed", RED),
        ("cancelled", "fine_tuning.job.cancelled", YELLOW),
        ("cancelled", "fine_tuning.job.status_changed", CYAN),
        ("running", "fine_tuning.job.created", CYAN),
    ],
)
def test_colour_per_event_type(status: str, event_type: str, colour: str) -> None:
    """Succeeded is green, failed red, cancelled yellow, anything else cyan."""
    event = _events(status=status)[event_type]
    assert colour in format_line(event, colour=True)
    assert "\x1b" not in format_line(event, colour=False)


def test_lines_for_each_event_type() -> None:
    """Each type's line says what changed and what came of it."""
    failed = _events(status="failed", error={"code": "invalid_file", "message": "bad\nrow 3"})
    cancelled = _events(status="cancelled")
    rest = {
        name: LINE.fullmatch(format_line(event, colour=False))
        for name, event in {
            "created": cancelled["fine_tuning.job.created"],
            "changed": cancelled["fine_tuning.job.status_changed"],
            "cancelled": cancelled["fine_tuning.job.cancelled"],
            "failed": failed["fine_tuning.job.failed"],
        }.items()
    }
    assert {k: m["rest"] if m else None for k, m in rest.items()} == {
        "created": "created    ftjob-abc123  created, running  gpt-4o-mini (x) (source openai)",
        "changed": "status     ftjob-abc123  running → cancelled  gpt-4o-mini (x) (source openai)",
        "cancelled": "cancelled  ftjob-abc123  running → cancelled  gpt-4o-mini (x) "
        "(source openai)",
        "failed": "failed     ftjob-abc123  running → failed  invalid_file: bad row 3 "
        "(source openai)",
    }


def test_control_characters_from_the_api_cannot_steer_the_terminal() -> None:
    """Escape sequences and newlines in API values are replaced in the readable line."""
    event = _events(
        status="failed", error={"code": "e", "message": "\x1b]0;pwned\x07\x1b[2J\rgone"}
    )["fine_tuning.job.failed"]
    line = format_line(event, colour=True)
    assert "\x07" not in line
    assert "\r" not in line
    assert "\n" not in line
    assert line.count("\x1b") == 2  # our colour and our reset, nothing else


async def test_explicit_json_and_text_override_the_terminal_check() -> None:
    """``json = true`` writes JSON on a terminal; ``json = false`` a plain line on a pipe."""
    terminal, pipe = Terminal(), Pipe()
    event = _succeeded()
    async with StdoutSink(_config(json=True), stream=terminal) as sink:
        await sink.send(event)
    async with StdoutSink(_config(json=False), stream=pipe) as sink:
        await sink.send(event)
    assert terminal.getvalue() == event.to_json() + "\n"
    assert pipe.getvalue() == format_line(event, colour=False) + "\n"


async def test_no_color_turns_colour_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NO_COLOR`` keeps escape sequences out even on a terminal."""
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    async with StdoutSink(_config(), stream=terminal) as sink:
        await sink.send(_succeeded())
    assert "\x1b" not in terminal.getvalue()


async def test_stream_key_picks_stderr_at_send_time(capsys: pytest.CaptureFixture[str]) -> None:
    """``stream = "stderr"`` writes to whatever sys.stderr is when the event is sent."""
    event = _succeeded()
    async with StdoutSink(_config(stream="stderr")) as sink:
        await sink.send(event)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == event.to_json() + "\n"


async def test_default_stream_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a ``stream`` key the sink writes to sys.stdout."""
    event = _succeeded()
    async with StdoutSink(_config()) as sink:
        await sink.send(event)
    assert capsys.readouterr().out == event.to_json() + "\n"


class BlockedPipe(Pipe):
    """A stream whose write blocks its thread until released, like a pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.released_in_time = False

    def write(self, text: str) -> int:
        """Block until released (at most 5 s), then write."""
        self.entered.set()
        self.released_in_time = self.release.wait(5)
        return super().write(text)


async def test_blocked_stream_does_not_block_the_event_loop() -> None:
    """While a write is stuck, the event loop keeps running, and the line arrives once freed."""
    pipe = BlockedPipe()
    event = _succeeded()
    async with StdoutSink(_config(), stream=pipe) as sink, anyio.create_task_group() as tg:
        tg.start_soon(sink.send, event)
        with anyio.fail_after(5):
            # Waiting in another thread needs the loop: it would never get here if the
            # write ran on the loop's own thread.
            await anyio.to_thread.run_sync(pipe.entered.wait, 5)
        pipe.release.set()
    assert pipe.released_in_time
    assert pipe.getvalue() == event.to_json() + "\n"


async def test_concurrent_sends_keep_lines_whole() -> None:
    """Many events sent at once come out as whole lines, one per event."""
    pipe = Pipe()
    base = _succeeded()
    events = [base.model_copy(update={"id": f"evt_{i:032d}"}) for i in range(50)]
    async with StdoutSink(_config(), stream=pipe) as sink, anyio.create_task_group() as tg:
        for event in events:
            tg.start_soon(sink.send, event)
    ids = sorted(json.loads(line)["id"] for line in pipe.getvalue().splitlines())
    assert ids == sorted(e.id for e in events)


async def test_closed_stream_disables_the_sink() -> None:
    """A broken pipe (the reader went away) disables the sink with a clear message."""

    class Broken(Pipe):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    async with StdoutSink(_config(), stream=Broken()) as sink:
        with pytest.raises(SinkDisabled, match="stdout is closed"):
            await sink.send(_succeeded())


async def test_unencodable_text_falls_back_to_escapes() -> None:
    """A stream that cannot encode non-ASCII text still gets the same JSON, with escapes."""
    raw = io.BytesIO()
    ascii_pipe = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
    event = _events(status="succeeded", fine_tuned_model="ft:m:é")["fine_tuning.job.succeeded"]
    async with StdoutSink(_config(), stream=ascii_pipe) as sink:
        await sink.send(event)
    line = raw.getvalue().decode("ascii")
    assert line.endswith("\n")
    assert event_from_envelope(line) == event
