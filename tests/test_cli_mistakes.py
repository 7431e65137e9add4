"""A user's mistake is one sentence and a documented exit code, never a traceback (issue 7).

Item 10 (run, watch, simulate), item 12 (`check` checks what `run` needs; `check --online`)
and item 20 (`deadletters list --sink nosuch`).
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from watcher.cli import main
from watcher.clock import ScaledClock
from watcher.simulator import Simulator, serve_simulator
from watcher.store import Store

KEY = "sk-proj-abcdefghijklmnop0123456789"


def _cli(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"TEST_KEY": KEY, **(env or {})})
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exc_info is None or result.exc_info[0] is SystemExit, result.exc_info
    return result.exit_code, result.stdout, result.stderr


def _config(tmp: Path, state: Path, body: str = "") -> Path:
    path = tmp / "ftwatch.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [state]
            path = "{state}"

            [[sources]]
            name = "openai"
            api_key = "${{TEST_KEY}}"
            """
        )
        + textwrap.dedent(body)
    )
    return path


def _blocked_state(tmp: Path) -> Path:
    """A state path whose directory cannot be created: a file stands where it would go."""
    (tmp / "in-the-way").write_text("")
    return tmp / "in-the-way" / "state" / "ftwatch.db"


def test_run_with_a_state_directory_it_cannot_create_says_so_and_exits_2(tmp_path: Path) -> None:
    """`run` on an uncreatable state directory: one sentence naming the path, exit 2."""
    path = _config(tmp_path, _blocked_state(tmp_path))
    code, _, err = _cli("run", "--config", str(path))
    assert code == 2
    assert err.startswith("ftwatch: error: cannot create or write ")
    assert "in-the-way" in err and "point state.path at another file" in err
    assert len(err.splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_run_with_a_read_only_state_directory_says_so_and_exits_2(tmp_path: Path) -> None:
    """`run` with a state file in a read-only directory: one sentence, exit 2."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    path = _config(tmp_path, locked / "ftwatch.db")
    code, _, err = _cli("run", "--config", str(path))
    assert code == 2 and "cannot create or write" in err


def test_check_refuses_what_run_would_refuse(tmp_path: Path) -> None:
    """`check` fails, as `run` would, on an uncreatable state path and a missing log directory."""
    path = _config(tmp_path, _blocked_state(tmp_path))
    code, out, err = _cli("check", "--config", str(path))
    assert code == 2 and out == ""
    assert "state.path" in err and "in-the-way is a file, not a directory" in err
    path = _config(
        tmp_path,
        tmp_path / "ftwatch.db",
        f'\n[[sinks]]\nname = "audit"\ntype = "logfile"\npath = "{tmp_path}/nope/events.jsonl"\n',
    )
    code, out, err = _cli("check", "--config", str(path))
    assert code == 2 and out == ""
    assert "logfile sink 'audit'" in err and "does not exist" in err
    assert not (tmp_path / "ftwatch.db").exists()  # check creates nothing


async def test_check_online_says_per_source_whether_its_key_works(tmp_path: Path) -> None:
    """`check --online` tries each source once: ok, key refused, or unreachable; exit 3."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    sim = Simulator(ScaledClock(1.0), api_key=KEY)
    async with serve_simulator(sim, port=0) as api:
        path = _config(
            tmp_path,
            tmp_path / "ftwatch.db",
            f"""
            [[sources]]
            name = "wrong-key"
            base_url = "{api}"
            api_key = "sk-wrong-key-0123456789abcdef"

            [[sources]]
            name = "nobody-home"
            base_url = "http://127.0.0.1:{closed}/v1"
            """,
        )
        path.write_text(
            path.read_text().replace('name = "openai"', f'name = "openai"\nbase_url = "{api}"')
        )
        code, out, err = await anyio.to_thread.run_sync(
            lambda: _cli("check", "--config", str(path), "--online")
        )
    lines = err.splitlines()
    assert code == 3
    assert lines[0] == "ftwatch: source 'openai': ok: the key lists jobs"
    assert lines[1].startswith("ftwatch: source 'wrong-key': key refused: ")
    assert lines[2].startswith("ftwatch: source 'nobody-home': not usable: ")
    assert KEY not in out + err and "sk-wrong-key" not in out + err


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        ([], {"OPENAI_API_KEY": ""}, "OPENAI_API_KEY is set but empty"),
        (["--base-url", "not-a-url"], {}, "--base-url 'not-a-url' is not a usable URL"),
        (["--interval", "-1"], {}, "--interval"),
        (["--give-up-after", "-5"], {}, "--give-up-after"),
    ],
)
def test_watch_mistakes_are_one_sentence_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str | None],
    needle: str,
) -> None:
    """`watch` with an empty key, a URL that is not one or a negative interval: exit 2."""
    monkeypatch.chdir(tmp_path)  # no ./ftwatch.toml
    code, out, err = _cli(
        "watch", "ftjob-abc", *args, env={"FTWATCH_CONFIG": None, "OPENAI_BASE_URL": None, **env}
    )
    assert code == 2
    assert needle in err
    assert out == ""


def test_simulate_on_an_impossible_port_is_a_usage_error() -> None:
    """`simulate --port 99999` is refused before anything starts, exit 2."""
    code, _, err = _cli("simulate", "--port", "99999")
    assert code == 2
    assert "--port" in err and "99999" in err


async def test_deadletters_for_an_unknown_sink_is_an_error(tmp_path: Path) -> None:
    """`deadletters list --sink nosuch` names the configured sinks and exits 2."""
    state = tmp_path / "ftwatch.db"
    async with await Store.open(state):
        pass
    path = _config(tmp_path, state, "\n[[sinks]]\nname = 'audit'\ntype = 'stdout'\n")
    for action in (["list"], ["retry"], ["drop"]):
        code, _, err = await anyio.to_thread.run_sync(
            lambda a=action: _cli("deadletters", *a, "--sink", "nosuch", "--config", str(path))
        )
        assert code == 2, action
        assert err == (
            f"ftwatch: error: no sink named 'nosuch' in {path} and no dead letters of one; "
            "configured sinks: audit\n"
        )
    code, _, err = await anyio.to_thread.run_sync(
        lambda: _cli("deadletters", "list", "--sink", "audit", "--config", str(path))
    )
    assert code == 0 and err == "0 dead letter(s)\n"
