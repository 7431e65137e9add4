"""Tests for the logfile sink (plugins/ftwatch_logfile): JSON Lines, flushing, rotation, fsync."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from ftwatch_logfile import LogfileConfig, LogfileSink
from watcher.diff import diff
from watcher.errors import ConfigError, SinkUnavailable
from watcher.events import BaseEvent, event_from_envelope
from watcher.models import FineTuningJob
from watcher.sinks import sink_plugin

T0 = 1_700_000_000


def _events(count: int) -> list[BaseEvent]:
    """``count`` distinct events: jobs created, each with a suffix that makes sizes differ."""
    events: list[BaseEvent] = []
    for i in range(count):
        job = FineTuningJob.model_validate(
            {
                "id": f"ftjob-{i:04d}",
                "status": "queued",
                "created_at": T0 + i,
                "model": "gpt-4o-mini",
                "user_provided_suffix": "s" * (i % 7) + "\u2028é",
            }
        )
        events += diff(None, job, source="openai", now=T0 + i)[1]
    return events


def _config(path: Path, **keys: Any) -> LogfileConfig:
    return LogfileConfig.model_validate({"name": "audit", "type": "logfile", "path": path, **keys})


def _lines(path: Path) -> list[str]:
    # JSON Lines split on "\n" only: U+2028 inside a string is not a line break.
    text = path.read_bytes().decode("utf-8")
    assert text == "" or text.endswith("\n")
    return text.split("\n")[:-1]


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _backups_oldest_first(path: Path) -> list[Path]:
    found = path.parent.glob(path.name + ".*")
    return sorted(found, key=lambda p: -int(p.suffix[1:]))


def _all_lines(directory: Path) -> list[str]:
    return [line for name in _names(directory) for line in _lines(directory / name)]


def test_entry_point_finds_the_logfile_sink() -> None:
    """The ``logfile`` entry point resolves to LogfileSink and its config model."""
    plugin = sink_plugin("logfile")
    assert plugin.factory is LogfileSink
    assert plugin.config_model is LogfileConfig


async def test_lines_round_trip_and_are_flushed_per_event(tmp_path: Path) -> None:
    """Each event is one line, exactly its envelope, readable the moment send returns."""
    path = tmp_path / "events.jsonl"
    events = _events(5)
    async with LogfileSink(_config(path)) as sink:
        for sent, event in enumerate(events, start=1):
            await sink.send(event)
            lines = _lines(path)
            assert len(lines) == sent
            assert lines[-1] == event.to_json()
    assert [event_from_envelope(line) for line in _lines(path)] == events


async def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    """A restarted sink appends after what is already in the file."""
    path = tmp_path / "events.jsonl"
    first, second = _events(2)
    async with LogfileSink(_config(path)) as sink:
        await sink.send(first)
    async with LogfileSink(_config(path)) as sink:
        await sink.send(second)
    assert _lines(path) == [first.to_json(), second.to_json()]


async def test_rotation_keeps_every_line_exactly_once(tmp_path: Path) -> None:
    """Rotated files together hold every line once, in order, none split and none too big."""
    path = tmp_path / "events.jsonl"
    events = _events(40)
    longest = max(len(e.to_json().encode()) + 1 for e in events)
    max_bytes = longest * 3
    async with LogfileSink(_config(path, max_bytes=max_bytes, backups=100)) as sink:
        for event in events:
            await sink.send(event)
    backups = _backups_oldest_first(path)
    assert len(backups) >= 10
    files = [*backups, path]  # oldest first
    assert all(0 < f.stat().st_size <= max_bytes for f in files)
    lines = [line for f in files for line in _lines(f)]
    assert lines == [e.to_json() for e in events]


async def test_rotation_drops_only_the_oldest_files(tmp_path: Path) -> None:
    """With ``backups = 2`` at most three files exist, holding the newest lines whole."""
    path = tmp_path / "events.jsonl"
    events = _events(30)
    max_bytes = max(len(e.to_json().encode()) + 1 for e in events) * 2
    async with LogfileSink(_config(path, max_bytes=max_bytes, backups=2)) as sink:
        for event in events:
            await sink.send(event)
    assert _names(tmp_path) == [
        "events.jsonl",
        "events.jsonl.1",
        "events.jsonl.2",
    ]
    kept = [line for f in [*_backups_oldest_first(path), path] for line in _lines(f)]
    assert len(kept) >= 3
    expected = [e.to_json() for e in events]
    assert kept == expected[len(expected) - len(kept) :]


async def test_a_line_bigger_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    """A line larger than ``max_bytes`` is written whole, never split across files."""
    path = tmp_path / "events.jsonl"
    events = _events(3)
    async with LogfileSink(_config(path, max_bytes=50, backups=5)) as sink:
        for event in events:
            await sink.send(event)
    assert _lines(path) == [events[2].to_json()]
    assert _lines(tmp_path / "events.jsonl.1") == [events[1].to_json()]
    assert _lines(tmp_path / "events.jsonl.2") == [events[0].to_json()]


async def test_concurrent_sends_keep_lines_whole(tmp_path: Path) -> None:
    """Many events sent at once, with rotation, still give whole lines, each exactly once."""
    path = tmp_path / "events.jsonl"
    events = _events(60)
    async with (
        LogfileSink(_config(path, max_bytes=4000, backups=1000)) as sink,
        anyio.create_task_group() as tg,
    ):
        for event in events:
            tg.start_soon(sink.send, event)
    assert sorted(_all_lines(tmp_path)) == sorted(e.to_json() for e in events)


@pytest.mark.parametrize("fsync", [True, False])
async def test_fsync_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool) -> None:
    """With ``fsync = true`` each send syncs the log file; without it, nothing is synced."""
    path = tmp_path / "events.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    async with LogfileSink(_config(path, fsync=fsync)) as sink:
        for event in _events(3):
            await sink.send(event)
            assert len(synced) == (len(_lines(path)) if fsync else 0)
    assert synced == ([path.stat().st_ino] * 3 if fsync else [])


def test_missing_directory_is_refused_at_startup(tmp_path: Path) -> None:
    """A path whose directory does not exist is a config error naming the path."""
    path = tmp_path / "nowhere" / "events.jsonl"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        LogfileSink(_config(path))
    assert str(path) in str(caught.value)
    assert "'audit'" in str(caught.value)
    assert caught.value.key == "path"


def test_directory_as_path_is_refused_at_startup(tmp_path: Path) -> None:
    """A path that is a directory is a config error suggesting a file name."""
    with pytest.raises(ConfigError, match="is a directory"):
        LogfileSink(_config(tmp_path))


async def test_directory_removed_later_is_transient(tmp_path: Path) -> None:
    """When the directory disappears after startup, sends fail as retryable, naming the path."""
    directory = tmp_path / "logs"
    directory.mkdir()
    path = directory / "events.jsonl"
    first, second = _events(2)
    async with LogfileSink(_config(path)) as sink:
        await sink.send(first)
        shutil.rmtree(directory)
        with pytest.raises(SinkUnavailable, match="does not exist any more") as caught:
            await sink.send(second)
        assert str(path) in str(caught.value)
        directory.mkdir()
        await sink.send(second)
    assert _lines(path) == [second.to_json()]


async def test_file_moved_away_is_reopened(tmp_path: Path) -> None:
    """After something else rotates the file (logrotate), new lines go to a new file at path."""
    path = tmp_path / "events.jsonl"
    first, second = _events(2)
    async with LogfileSink(_config(path)) as sink:
        await sink.send(first)
        path.rename(tmp_path / "moved.jsonl")
        await sink.send(second)
    assert _lines(tmp_path / "moved.jsonl") == [first.to_json()]
    assert _lines(path) == [second.to_json()]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"max_bytes": 1000, "backups": 0}, "backups must be at least 1"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"path": ""}, "expected a file path"),
        ({"size": 3}, "size"),
    ],
)
def test_bad_config_is_explained(tmp_path: Path, keys: dict[str, Any], expected: str) -> None:
    """Impossible rotation settings, an empty path and unknown keys are refused by name."""
    with pytest.raises(ValidationError, match=expected):
        LogfileConfig.model_validate(
            {"name": "audit", "type": "logfile", "path": tmp_path / "e.jsonl", **keys}
        )


def test_path_expands_home() -> None:
    """``~`` in the path means the user's home directory."""
    config = LogfileConfig(name="audit", type="logfile", path=Path("~/events.jsonl"))
    assert config.path == Path.home() / "events.jsonl"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
async def test_new_files_are_private_by_default(tmp_path: Path) -> None:
    """Events carry job names and metadata: a new log file, and each one rotation starts, is
    0600 whatever the umask."""
    path = tmp_path / "events.jsonl"
    events = _events(8)
    max_bytes = max(len(e.to_json().encode()) + 1 for e in events) * 2
    old_umask = os.umask(0o022)
    try:
        async with LogfileSink(_config(path, max_bytes=max_bytes, backups=10)) as sink:
            for event in events:
                await sink.send(event)
    finally:
        os.umask(old_umask)
    assert len(_names(tmp_path)) > 2
    assert {_mode(tmp_path / name) for name in _names(tmp_path)} == {0o600}


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize(("written", "mode"), [("0640", 0o640), ("0o644", 0o644), ("600", 0o600)])
async def test_mode_key_sets_the_bits_of_a_new_file(
    tmp_path: Path, written: str, mode: int
) -> None:
    """``mode = "0640"`` gives exactly those bits, even under a umask that would narrow them."""
    path = tmp_path / "events.jsonl"
    config = _config(path, mode=written)
    assert config.model_dump()["mode"] == f"{mode:04o}"
    old_umask = os.umask(0o077)
    try:
        async with LogfileSink(config) as sink:
            await sink.send(_events(1)[0])
    finally:
        os.umask(old_umask)
    assert _mode(path) == mode


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
async def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    """The operator's chmod of an existing file is not undone by the sink."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"")
    path.chmod(0o640)
    async with LogfileSink(_config(path)) as sink:
        await sink.send(_events(1)[0])
    assert _mode(path) == 0o640


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (0o640, 'octal string such as "0600"'),
        (640, 'octal string such as "0600"'),
        ("0800", "got '0800'"),
        ("rw-r-----", "got 'rw-r-----'"),
        ("01777", "got '01777'"),
        ("0400", "lets the owner write"),
    ],
)
def test_bad_mode_is_explained(tmp_path: Path, written: object, expected: str) -> None:
    """A mode that is not an octal string, or that the sink could not write with, is refused."""
    with pytest.raises(ValidationError, match=re.escape(expected)):
        _config(tmp_path / "e.jsonl", mode=written)
