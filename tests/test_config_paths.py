"""Paths in a config file are relative to that file, wherever ftwatch is started from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.config import load_config, parse_config

CONFIG = """\
[state]
path = "state/ftwatch.db"

[[sources]]
name = "openai"

[[sinks]]
name = "audit"
type = "logfile"
path = "events.jsonl"
"""


@pytest.fixture
def elsewhere(tmp_path: Path) -> tuple[Path, Path]:
    """A config in one directory and an unrelated working directory."""
    config_dir = tmp_path / "etc" / "ftwatch"
    config_dir.mkdir(parents=True)
    (config_dir / "ftwatch.toml").write_text(CONFIG, encoding="utf-8")
    workdir = tmp_path / "somewhere" / "else"
    workdir.mkdir(parents=True)
    return config_dir, workdir


def test_check_from_another_directory_resolves_paths_next_to_the_config(
    elsewhere: tuple[Path, Path],
) -> None:
    """`ftwatch check --config /etc/ftwatch/ftwatch.toml` run from elsewhere shows the paths
    next to the config file, so `run` from there would use the same state as always."""
    config_dir, workdir = elsewhere
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "check", "--config", str(config_dir / "ftwatch.toml")],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FTWATCH_STATE_PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads(proc.stdout)
    assert resolved["state"]["path"] == str(config_dir / "state" / "ftwatch.db")
    assert resolved["sinks"][0]["path"] == str(config_dir / "events.jsonl")


def test_a_relative_config_path_gives_absolute_paths(
    elsewhere: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config named relative to the working directory still pins its paths absolutely, so a
    later change of directory does not move the state."""
    config_dir, _ = elsewhere
    monkeypatch.chdir(config_dir.parent)
    config = load_config(Path("ftwatch") / "ftwatch.toml", environ={})
    monkeypatch.chdir(elsewhere[1])
    assert config.state.path == config_dir / "state" / "ftwatch.db"
    assert config.sinks[0].model_dump()["path"] == config_dir / "events.jsonl"


def test_absolute_and_home_paths_stay_as_written(tmp_path: Path) -> None:
    """An absolute path, or one starting with ~, does not move."""
    path = tmp_path / "ftwatch.toml"
    path.write_text(
        f'[state]\npath = "{tmp_path / "abs.db"}"\n[[sources]]\nname = "a"\n'
        '[[sinks]]\nname = "l"\ntype = "logfile"\npath = "~/events.jsonl"\n',
        encoding="utf-8",
    )
    config = load_config(path, environ={})
    assert config.state.path == tmp_path / "abs.db"
    assert config.sinks[0].model_dump()["path"] == Path("~/events.jsonl").expanduser()


def test_the_state_path_override_is_relative_to_the_working_directory(
    elsewhere: tuple[Path, Path],
) -> None:
    """FTWATCH_STATE_PATH is typed in a shell, so a relative one means the shell's directory."""
    config_dir, _ = elsewhere
    config = load_config(config_dir / "ftwatch.toml", environ={"FTWATCH_STATE_PATH": "x.db"})
    assert config.state.path == Path("x.db")


def test_parse_config_has_no_file_and_leaves_paths_alone() -> None:
    """Config data built in code has no file to be relative to."""
    config = parse_config({"state": {"path": "x.db"}, "sources": [{"name": "a"}]})
    assert config.state.path == Path("x.db")
