"""The README documents what a user can use: every event type, sink type and command."""

from __future__ import annotations

from pathlib import Path

import click

from watcher import EVENT_TYPES, available_sinks
from watcher.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_event_type_is_in_the_readme() -> None:
    """Each event type's wire name appears in the README."""
    for name in EVENT_TYPES:
        assert f"`{name}`" in README, name


def test_every_built_in_sink_type_is_in_the_readme() -> None:
    """Each sink type shipped with ftwatch has a section in the README."""
    for name, plugin in available_sinks().items():
        if plugin.origin.startswith("ftwatch "):
            assert f"`{name}`" in README, name


def test_every_command_is_in_the_readme() -> None:
    """Each ftwatch command appears in the README."""
    assert isinstance(main, click.Group)
    for name in main.commands:
        assert f"ftwatch {name}" in README, name


def test_the_readme_starts_with_the_two_commands() -> None:
    """The first code block is the demo command and the test command, as CI runs them."""
    block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert block[0].startswith("pip install . && ftwatch demo")
    assert block[1].startswith("pip install -e '.[test]' && pytest")
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' && pytest" in ci


def test_the_exit_codes_in_the_readme_are_those_of_the_main_help() -> None:
    """The README's exit-code table and `ftwatch --help` list the same codes."""
    from watcher.cli.common import EPILOG

    table = README.split("### Exit codes\n\n", 1)[1].split("\n\n", 1)[0]
    in_readme = {line.split("|")[1].strip() for line in table.splitlines()[2:]}
    in_help = {line.split()[0] for line in EPILOG.splitlines()[2:] if line[:4].strip().isdigit()}
    assert in_readme == in_help == {"0", "1", "2", "3", "4", "130"}
