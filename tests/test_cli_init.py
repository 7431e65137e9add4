"""`ftwatch init`: a commented starter config that `check` accepts, never over an existing one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from watcher.cli import main
from watcher.cli.init import starter_config
from watcher.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def _named_variables(text: str) -> set[str]:
    """The ${VAR} references of the lines that are not comments."""
    live = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", live))


def test_the_starter_is_the_example_config() -> None:
    """The template shipped in the package is config.example.toml, word for word."""
    assert starter_config() == (ROOT / "config.example.toml").read_text(encoding="utf-8")


def test_init_writes_a_config_that_loads_and_that_check_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`init` writes ./ftwatch.toml; with the variables it names set, it loads and checks."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "ftwatch.toml"
    assert f"wrote {written}" in result.stdout
    text = written.read_text()
    assert text.startswith("# ftwatch configuration")
    names = _named_variables(text)
    assert names == {"OPENAI_API_KEY"}
    env = dict.fromkeys(names, "sk-starter-test")
    config = load_config(written, environ=env)
    assert [s.name for s in config.sources] == ["openai"]
    assert Path(config.state.path) == tmp_path / "ftwatch.db"
    check = CliRunner().invoke(main, ["check"], env=env)
    assert check.exit_code == 0, check.output
    assert "ftwatch.toml is valid" in check.stderr
    assert "sk-starter-test" not in check.output


def test_init_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing ftwatch.toml is left as it is: one sentence, exit 2."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ftwatch.toml").write_text("# mine\n")
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"ftwatch: error: {tmp_path / 'ftwatch.toml'} exists already and was left as it is;"
        " edit it, or move it away and run `ftwatch init` again\n"
    )
    assert (tmp_path / "ftwatch.toml").read_text() == "# mine\n"


def test_a_missing_config_points_at_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` without a config says how to make one."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["check"], env={"FTWATCH_CONFIG": None})
    assert result.exit_code == 2
    assert "run `ftwatch init` to write a starter ftwatch.toml" in result.stderr
