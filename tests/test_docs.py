"""The README documents what a user can use: every event type, sink type and command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click

from watcher import EVENT_TYPES, available_sinks
from watcher.cli import main
from watcher.config import parse_config
from watcher.sinks import RetryPolicy, SinkConfig

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


ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (ROOT / "config.example.toml").read_text()

#: A commented-out line of TOML in the example: a key, a table header, or a comment inside a
#: commented-out table (``# # ...``). Prose comments never start with ``word =`` or ``[``.
_COMMENTED_TOML = re.compile(r"^# (?=[A-Za-z_][\w-]* = |\[|# )")


def test_the_example_config_names_only_real_commands() -> None:
    """Every `ftwatch <command>` the example config mentions exists."""
    assert isinstance(main, click.Group)
    named = set(re.findall(r"`ftwatch (\w+)", EXAMPLE))
    assert named
    assert named <= set(main.commands), named - set(main.commands)


def test_every_key_the_example_documents_exists() -> None:
    """With every commented-out key and table switched on, the example still validates: no
    documented key is missing from the models (a misspelt or removed key is an error)."""
    uncommented = "\n".join(_COMMENTED_TOML.sub("", line) for line in EXAMPLE.splitlines())
    data = tomllib.loads(uncommented)
    environ = {
        "OPENAI_API_KEY": "sk-test",
        "FTWATCH_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "HOOKS_TOKEN": "t",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
        "SLACK_BOT_TOKEN": "xoxb-0000-test",
        "SMTP_PASSWORD": "smtp-password",
        "TEAMS_WORKFLOW_URL": "https://prod-00.westus.logic.azure.com/workflows/x?sig=s",
        "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/t0ken",
        "PAGERDUTY_ROUTING_KEY": "R0" + "0" * 30,
        "TELEGRAM_BOT_TOKEN": "123456789:ABCdefGhIJKlmnOPqrstUVwxyz123456789",
    }
    config = parse_config(data, path="config.example.toml", environ=environ)
    # Everything was switched on: both sources, and the commented-out sinks.
    assert [s.name for s in config.sources] == ["openai", "simulator"]
    names = [s.name for s in config.sinks]
    assert names[:5] == ["audit", "console", "hooks", "ml-alerts", "ml-bot"]
    # Every built-in sink type has its example.
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "entry-points"
    ]["ftwatch.sinks"]
    assert {s.type for s in config.sinks} == set(declared)
    assert config.sources[0].organization is not None
    assert config.sinks[0].model_dump()["mode"] == "0600"


def test_the_keys_every_sink_takes_are_real() -> None:
    """The indented list of the keys every sink takes names fields of SinkConfig/RetryPolicy."""
    listed = re.findall(r"^#   (\w+) = ", EXAMPLE, re.MULTILINE)
    assert "concurrency" in listed and "max_backoff" in listed
    known = set(SinkConfig.model_fields) | set(RetryPolicy.model_fields)
    assert set(listed) <= known, set(listed) - known


def test_the_exit_codes_in_the_readme_are_those_of_the_main_help() -> None:
    """The README's exit-code table and `ftwatch --help` list the same codes."""
    from watcher.cli.common import EPILOG

    table = README.split("### Exit codes\n\n", 1)[1].split("\n\n", 1)[0]
    in_readme = {line.split("|")[1].strip() for line in table.splitlines()[2:]}
    in_help = {line.split()[0] for line in EPILOG.splitlines()[2:] if line[:4].strip().isdigit()}
    assert in_readme == in_help == {"0", "1", "2", "3", "4", "130"}
