"""The ftwatch command: exit codes, clear errors, plugins from outside, sinks test, dead letters."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner
from slack_sdk.models.blocks import Block
from tests.helpers import events_for

from watcher.cli import main
from watcher.serving import serve_asgi
from watcher.store import Store
from watcher.testing_receiver import RecordingReceiver

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = "sk-proj-abcdefghijklmnop0123456789"
SLACK_SECRET = "hunter2slackwebhookpart"


def _config(tmp: Path, body: str) -> Path:
    path = tmp / "ftwatch.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [state]
            path = "{tmp / "state.db"}"

            [[sources]]
            name = "openai"
            api_key = "${{TEST_KEY}}"
            """
        )
        + textwrap.dedent(body)
    )
    return path


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"TEST_KEY": KEY, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def test_check_prints_the_resolved_config_with_secrets_masked(tmp_path: Path) -> None:
    """`check` exits 0 and shows every key resolved, the API key and webhook secret masked."""
    path = _config(
        tmp_path,
        f"""
        [[sinks]]
        name = "hook"
        type = "webhook"
        url = "https://example.com/hook?token=abc123secret"
        secret = "{SECRET}"
        """,
    )
    code, out, err = _run("check", "--config", str(path))
    assert code == 0, err
    resolved = json.loads(out)
    assert resolved["sources"][0]["poll_interval"] == 30.0
    assert KEY not in out and SECRET not in out and "abc123secret" not in out
    assert "is valid" in err


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("\n[[sinks]]\nname = 'x'\ntype = 'slak'\n", "unknown sink type 'slak'"),
        ("\n[logging]\nlevel = 'loud'\n", "logging.level"),
        ("\n[[sinks]]\nname = 'x'\ntype = 'logfile'\npath = 3\n", "sinks[0].path"),
        ("\n[statee]\npath = 'x'\n", "unknown key 'statee'"),
        (
            "\n[[sinks]]\nname = 'h'\ntype = 'webhook'\nurl = 'https://x.test'\nsecret = 'nope'\n",
            "whsec_",
        ),
        (
            "\n[[sinks]]\nname = 's'\ntype = 'slack'\nwebhook_url = 'not a url'\n",
            "sinks[0].webhook_url",
        ),
    ],
)
def test_bad_configs_get_one_clear_sentence_and_exit_2(
    tmp_path: Path, body: str, needle: str
) -> None:
    """Each config mistake names the file and the key, exits 2, and shows no traceback."""
    path = _config(tmp_path, body)
    code, out, err = _run("check", "--config", str(path))
    assert code == 2
    assert needle in err
    assert "ftwatch.toml" in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_a_missing_environment_variable_and_a_missing_file_are_clear(tmp_path: Path) -> None:
    """${VAR} unset and a config file that does not exist each give exit 2 and a hint."""
    path = _config(tmp_path, "")
    result = CliRunner().invoke(main, ["check", "--config", str(path)], env={"TEST_KEY": None})
    assert result.exit_code == 2
    assert "TEST_KEY" in result.stderr and "sources[0].api_key" in result.stderr
    code, _, err = _run("run", "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert "file not found" in err


def test_the_real_binary_refuses_a_bad_config_without_a_traceback(tmp_path: Path) -> None:
    """Run as a process, a wrong type exits 2 with one line on stderr."""
    path = _config(tmp_path, "\n[[sinks]]\nname = 'x'\ntype = 'stdout'\nstream = 7\n")
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TEST_KEY": KEY},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "sinks[0].stream" in proc.stderr


def test_the_exit_codes_are_listed_once_in_the_main_help() -> None:
    """`ftwatch --help` lists every exit code; a subcommand's help does not repeat the table."""
    code, out, _ = _run("--help")
    assert code == 0
    assert "Exit codes" in out and "job failed" in out and "job cancelled" in out
    assert "130" in out and "unreachable" in out
    for args in (["watch"], ["run"], ["check"], ["simulate"], ["sinks", "test"]):
        code, out, _ = _run(*args, "--help")
        assert code == 0
        assert "Exit codes:" not in out, args


def test_simulate_options_each_have_help() -> None:
    """Every option of `simulate` says what it does."""
    code, out, _ = _run("simulate", "--help")
    assert code == 0
    for option, words in (
        ("--host", "address"),
        ("--port", "port"),
        ("--seed", "Seeds"),
    ):
        line = next(line for line in out.splitlines() if line.strip().startswith(option))
        assert words in line, line


# -- plugins from outside the package ------------------------------------------------------------


@pytest.fixture
def third_party_plugin(tmp_path: Path) -> Iterator[Path]:
    """Install a sink plugin that lives outside ftwatch: a module plus its dist-info."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_pager.py").write_text(
        textwrap.dedent(
            '''
            """A third-party sink: appends event ids to a file."""
            from pathlib import Path
            from watcher import SinkBase, SinkConfig

            class PagerConfig(SinkConfig):
                out: Path

            class PagerSink(SinkBase):
                config_model = PagerConfig

                async def send(self, event):
                    with self.config.out.open("a") as f:
                        f.write(event.id + "\\n")

            class PickyPagerSink(PagerSink):
                def __init__(self, config):
                    raise ValueError("bad key")

            class CrashingPagerSink(PagerSink):
                async def send(self, event):
                    raise RuntimeError("pager backend exploded")
            '''
        )
    )
    dist = site / "acme_pager-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-pager\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(
        "[ftwatch.sinks]\n"
        "pager = acme_pager:PagerSink\n"
        "picky-pager = acme_pager:PickyPagerSink\n"
        "crashing-pager = acme_pager:CrashingPagerSink\n"
    )
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("acme_pager", None)


def _list_sinks(site: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run `ftwatch sinks` with ``site`` on the path; return the process and its lines by type."""
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "sinks"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=60,
        check=False,
    )
    return proc, {line.split()[0]: line for line in proc.stdout.splitlines()}


def test_sinks_lists_built_ins_and_a_third_party_plugin_with_their_origin(
    third_party_plugin: Path,
) -> None:
    """`ftwatch sinks` shows each sink type and the distribution it came from."""
    proc, lines = _list_sinks(third_party_plugin)
    assert proc.returncode == 0, proc.stderr
    assert {"logfile", "slack", "stdout", "webhook", "pager"} <= lines.keys()
    assert "acme-pager 1.2.3" in lines["pager"]
    assert "ftwatch" in lines["webhook"]


async def test_a_third_party_sink_type_is_found_from_the_config_and_delivers(
    third_party_plugin: Path, tmp_path: Path
) -> None:
    """`type = "pager"` finds the outside plugin, and the Watcher delivers to it."""
    from watcher import Watcher, load_config
    from watcher.clock import ManualClock
    from watcher.simulator import Simulator
    from watcher.testing import simulator_transport

    out = tmp_path / "paged.txt"
    path = _config(tmp_path, f'\n[[sinks]]\nname = "oncall"\ntype = "pager"\nout = "{out}"\n')
    os.environ["TEST_KEY"] = KEY
    try:
        config = load_config(path)
    finally:
        del os.environ["TEST_KEY"]
    sim = Simulator(ManualClock(1_750_000_000.0))
    sim.create_job(script=[(0, "running")])
    config = config.model_copy(
        update={
            "sources": [
                config.sources[0].model_copy(update={"base_url": "http://sim/v1", "api_key": None})
            ]
        }
    )
    watcher = Watcher(config, transport=simulator_transport(sim), autostart=False)
    watcher.config.sources[0].__dict__["emit_existing"] = True
    async with watcher:
        [event] = await watcher.poll_once()
        await watcher.flush()
    assert out.read_text().split() == [event.id]


def test_an_unknown_type_lists_the_known_ones(tmp_path: Path) -> None:
    """An unknown sink type is refused with the list of the types that exist."""
    path = _config(tmp_path, "\n[[sinks]]\nname = 'x'\ntype = 'nope'\n")
    code, _, err = _run("check", "--config", str(path))
    assert code == 2
    assert "known types:" in err and "webhook" in err and "slack" in err


@pytest.fixture
def broken_plugin(tmp_path: Path) -> Iterator[Path]:
    """Install a distribution whose sink entry point names a module that does not exist."""
    site = tmp_path / "broken-site"
    dist = site / "acme_pager-1.2.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-pager\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[ftwatch.sinks]\npager = acme_pagr:PagerSink\n")
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))


def test_sinks_lists_every_type_and_a_broken_plugin_with_its_reason(broken_plugin: Path) -> None:
    """One plugin that cannot be imported is listed with why, beside the built-ins, exit 0."""
    proc, lines = _list_sinks(broken_plugin)
    assert proc.returncode == 0, proc.stderr
    assert {"logfile", "slack", "stdout", "webhook", "pager"} <= lines.keys()
    assert lines["pager"] == (
        f"{'pager':<12} {'acme-pager 1.2.3':<28} "
        "cannot be loaded: ModuleNotFoundError: No module named 'acme_pagr'"
    )
    assert "ftwatch_webhook:WebhookSink" in lines["webhook"]
    assert "Traceback" not in proc.stderr


def test_a_config_using_a_broken_plugin_fails_with_one_sentence(
    broken_plugin: Path, tmp_path: Path
) -> None:
    """`type = "pager"` from a broken package is refused at load time, saying why, exit 2."""
    path = _config(tmp_path, f'\n[[sinks]]\nname = "oncall"\ntype = "pager"\nout = "{tmp_path}"\n')
    code, out, err = _run("check", "--config", str(path))
    assert code == 2
    assert err.strip() == (
        f"ftwatch: error: {path}: sinks[0].type: sink plugin 'pager' (acme_pagr:PagerSink, from "
        "acme-pager 1.2.3) cannot be loaded: ModuleNotFoundError: No module named 'acme_pagr'; "
        "reinstall the package that provides it"
    )
    assert out == ""


@pytest.mark.parametrize("command", [("run",), ("sinks", "test", "b")])
def test_a_plugin_whose_constructor_raises_stops_the_command_with_one_sentence(
    third_party_plugin: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """`run` and `sinks test` with a sink whose constructor raises exit 2 naming it, no state.

    Sinks are built before any source is polled: the default OpenAI URL is never called.
    """
    path = _config(tmp_path, f'\n[[sinks]]\nname = "b"\ntype = "picky-pager"\nout = "{tmp_path}"\n')
    code, out, err = _run(*command, "--config", str(path))
    assert code == 2
    assert err == (
        "ftwatch: error: sink 'b' (type 'picky-pager') could not be built: ValueError: bad key\n"
    )
    assert out == ""
    assert not (tmp_path / "state.db").exists()


# -- sinks test ---------------------------------------------------------------------------------


def _sinks_test_in_thread(config: Path, name: str) -> tuple[int, str, str]:
    return _run("sinks", "test", name, "--config", str(config))


async def test_sinks_test_sends_a_marked_sample_and_reports_latency(tmp_path: Path) -> None:
    """`sinks test` delivers a marked sample event to the receiver and exits 0."""
    receiver = RecordingReceiver()
    async with serve_asgi(receiver) as url:
        path = _config(
            tmp_path,
            f'\n[[sinks]]\nname = "hook"\ntype = "webhook"\nurl = "{url}/h"\nsecret = "{SECRET}"\n',
        )
        code, out, err = await anyio.to_thread.run_sync(_sinks_test_in_thread, path, "hook")
    assert code == 0, err
    [request] = receiver.requests
    body = json.loads(request.body)
    assert re.fullmatch(
        rf"ok: sample event {body['id']} delivered to sink 'hook' in \d+ ms \(HTTP 200\)\n", out
    )
    assert body["data"]["job"]["metadata"] == {"ftwatch_test": "true"}
    assert request.headers["webhook-signature"].startswith("v1,")


async def test_each_sinks_test_sends_a_new_event_id(tmp_path: Path) -> None:
    """Two runs send two different ids, so a receiver that drops duplicates keeps both."""
    receiver = RecordingReceiver()
    async with serve_asgi(receiver) as url:
        path = _config(tmp_path, f'\n[[sinks]]\nname = "hook"\ntype = "webhook"\nurl = "{url}"\n')
        for _ in range(2):
            code, _, err = await anyio.to_thread.run_sync(_sinks_test_in_thread, path, "hook")
            assert code == 0, err
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(set(ids)) == 2
    assert all(re.fullmatch(r"evt_test_[0-9a-f]{24}", i) for i in ids)
    assert [r.json()["id"] for r in receiver.requests] == ids
    assert {r.json()["data"]["id"] for r in receiver.requests} == {"ftjob-ftwatch-test"}


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (
            400,
            "the receiver rejected the event with HTTP 400 (a running daemon would dead-letter it)",
        ),
        (
            503,
            "the receiver answered HTTP 503, a temporary failure (a running daemon would retry it)",
        ),
        (
            410,
            "the receiver answered 410 Gone, asking not to be called again "
            "(a running daemon would stop this sink until restarted)",
        ),
    ],
)
async def test_sinks_test_says_what_a_daemon_would_do_with_a_refusal(
    tmp_path: Path, status: int, reason: str
) -> None:
    """A refused test delivery exits 1 with one sentence: the answer and the daemon's next step."""
    receiver = RecordingReceiver()
    receiver.respond(status)
    async with serve_asgi(receiver) as url:
        path = _config(tmp_path, f'\n[[sinks]]\nname = "hook"\ntype = "webhook"\nurl = "{url}"\n')
        code, out, err = await anyio.to_thread.run_sync(_sinks_test_in_thread, path, "hook")
    assert code == 1
    assert re.fullmatch(
        rf"ftwatch: error: sink 'hook' failed after \d+ ms: {re.escape(reason)}\n", err
    )
    assert out == ""


def test_sinks_test_names_the_exception_a_plugin_raised(
    third_party_plugin: Path, tmp_path: Path
) -> None:
    """A plugin's unexpected exception is reported with its type, as the bug it is, exit 1."""
    path = _config(
        tmp_path, f'\n[[sinks]]\nname = "p"\ntype = "crashing-pager"\nout = "{tmp_path}"\n'
    )
    code, _, err = _run("sinks", "test", "p", "--config", str(path))
    assert code == 1
    assert re.fullmatch(
        r"ftwatch: error: sink 'p' failed after \d+ ms: the plugin raised RuntimeError: pager "
        r"backend exploded \(a bug in the plugin; a running daemon would retry it and log the "
        r"traceback as sink_raised\)\n",
        err,
    )


async def test_sinks_test_to_slack_posts_a_message_marked_as_a_test(tmp_path: Path) -> None:
    """A Slack sink's test reaches a real local receiver as a message that says it is a test."""
    receiver = RecordingReceiver()
    receiver.respond(200, b"ok")
    async with serve_asgi(receiver) as url:
        path = _config(
            tmp_path,
            f'\n[[sinks]]\nname = "ml-alerts"\ntype = "slack"\n'
            f'webhook_url = "{url}/services/T0/B0/{SLACK_SECRET}"\n',
        )
        code, out, err = await anyio.to_thread.run_sync(_sinks_test_in_thread, path, "ml-alerts")
    assert code == 0, err
    [request] = receiver.requests
    assert request.path == f"/services/T0/B0/{SLACK_SECRET}"
    message = request.json()
    assert message["text"].startswith("🧪 Test from ftwatch: Fine-tuning job succeeded: ")
    header = message["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["text"].startswith("🧪 Test from ftwatch: ")
    for raw in message["blocks"]:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
    assert re.fullmatch(
        r"ok: sample event evt_test_[0-9a-f]{24} delivered to sink 'ml-alerts' in \d+ ms "
        r"\(HTTP 200\)\n",
        out,
    )
    assert SLACK_SECRET not in out + err


async def test_sinks_test_to_an_unreachable_slack_says_it_refused(tmp_path: Path) -> None:
    """A Slack sink whose host refuses the connection exits 1 saying so, without the URL."""
    async with serve_asgi(RecordingReceiver()) as url:
        pass  # the port is closed again once the server has stopped
    path = _config(
        tmp_path,
        f'\n[[sinks]]\nname = "ml-alerts"\ntype = "slack"\n'
        f'webhook_url = "{url}/services/T0/B0/{SLACK_SECRET}"\n',
    )
    code, _, err = await anyio.to_thread.run_sync(_sinks_test_in_thread, path, "ml-alerts")
    assert code == 1
    assert re.fullmatch(
        r"ftwatch: error: sink 'ml-alerts' failed after \d+ ms: Slack refused the connection "
        r"\(a running daemon would retry it\)\n",
        err,
    )
    assert SLACK_SECRET not in err


def test_sinks_test_says_what_failed_for_an_unreachable_url(tmp_path: Path) -> None:
    """An unreachable webhook makes `sinks test` exit 1 with a clear reason and no URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = _config(
        tmp_path,
        f'\n[[sinks]]\nname = "hook"\ntype = "webhook"\nurl = "http://127.0.0.1:{port}/x?t=zz9"\n',
    )
    code, out, err = _run("sinks", "test", "hook", "--config", str(path))
    assert code == 1
    assert re.fullmatch(
        r"ftwatch: error: sink 'hook' failed after \d+ ms: the receiver refused the connection "
        r"\(a running daemon would retry it\)\n",
        err,
    )
    assert "zz9" not in err and out == ""


# -- dead letters -------------------------------------------------------------------------------


async def test_deadletters_list_retry_and_drop(tmp_path: Path) -> None:
    """Dead letters are listed with their error, queued again, and dropped."""
    path = _config(tmp_path, "\n[[sinks]]\nname = 'audit'\ntype = 'stdout'\n")
    events = events_for("ftjob-x", ["queued", "running", "failed"])
    async with await Store.open(tmp_path / "state.db") as store:
        await store.commit("openai", states={}, events=events, now=1.0)
        for seq in (1, 2):
            await store.dead_letter("audit", seq, attempts=3, error="HTTP 500", now=2.0)

    def cli(*args: str) -> tuple[int, str, str]:
        return _run("deadletters", *args, "--config", str(path))

    code, out, _ = await anyio.to_thread.run_sync(cli, "list", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 2 and rows[0]["last_error"] == "HTTP 500"
    code, _, err = await anyio.to_thread.run_sync(cli, "retry")
    assert code == 2 and "--all" in err  # acting on nothing named is refused
    code, out, _ = await anyio.to_thread.run_sync(cli, "retry", "--id", rows[0]["event_id"])
    assert code == 0 and out.startswith("1 ")
    code, out, _ = await anyio.to_thread.run_sync(cli, "drop", "--all")
    assert code == 0 and out.startswith("1 ")
    async with await Store.open(tmp_path / "state.db") as store:
        assert await store.dead_letters() == []
        # The retried one is queued again, beside the third event that never failed.
        pending = [d.event_id for d in await store.pending("audit")]
        assert pending == [rows[0]["event_id"], events[2].id]


@pytest.fixture
async def dead(tmp_path: Path) -> tuple[Path, list[str]]:
    """A config and a state file holding two dead letters of sink `audit` and one of `console`."""
    path = _config(
        tmp_path,
        "\n[[sinks]]\nname = 'audit'\ntype = 'stdout'\n"
        "\n[[sinks]]\nname = 'console'\ntype = 'stdout'\n",
    )
    events = events_for("ftjob-x", ["queued", "running", "failed"])
    async with await Store.open(tmp_path / "state.db") as store:
        await store.commit("openai", states={}, events=events, now=1.0)
        for sink, seq in (("audit", 1), ("audit", 2), ("console", 3)):
            await store.dead_letter(sink, seq, attempts=3, error=f"HTTP 50{seq}", now=2.0)
    return path, [e.id for e in events]


def _dead_cli(path: Path, *args: str) -> tuple[int, str, str]:
    return _run("deadletters", *args, "--config", str(path))


async def _dead_letters(path: Path) -> list[tuple[str, str]]:
    async with await Store.open(path.parent / "state.db") as store:
        return [(d.sink, d.event_id) for d in await store.dead_letters()]


async def test_deadletters_list_shows_one_line_each_and_a_count(
    dead: tuple[Path, list[str]],
) -> None:
    """Plain `list` prints sink, id, type, job, attempts and error per line, and the count."""
    path, ids = dead
    code, out, err = await anyio.to_thread.run_sync(_dead_cli, path, "list")
    assert code == 0
    assert out.splitlines() == [
        f"audit  {ids[0]}  fine_tuning.job.status_changed  ftjob-x  x3  HTTP 501",
        f"audit  {ids[1]}  fine_tuning.job.status_changed  ftjob-x  x3  HTTP 502",
        f"console  {ids[2]}  fine_tuning.job.failed  ftjob-x  x3  HTTP 503",
    ]
    assert err == "3 dead letter(s)\n"


async def test_deadletters_list_sink_and_json(dead: tuple[Path, list[str]]) -> None:
    """`list --sink` shows that sink's dead letters only; `--json` one object per line."""
    path, ids = dead
    code, out, err = await anyio.to_thread.run_sync(_dead_cli, path, "list", "--sink", "console")
    assert code == 0
    assert out == f"console  {ids[2]}  fine_tuning.job.failed  ftjob-x  x3  HTTP 503\n"
    assert err == "1 dead letter(s)\n"
    code, out, err = await anyio.to_thread.run_sync(
        _dead_cli, path, "list", "--sink", "audit", "--json"
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and err == ""
    assert [(r["sink"], r["event_id"], r["attempts"], r["last_error"]) for r in rows] == [
        ("audit", ids[0], 3, "HTTP 501"),
        ("audit", ids[1], 3, "HTTP 502"),
    ]
    assert rows[0]["job_id"] == "ftjob-x" and rows[0]["source"] == "test"


async def test_deadletters_retry_sink_queues_only_that_sink(dead: tuple[Path, list[str]]) -> None:
    """`retry --sink` queues that sink's dead letters again; a sink with none says so, exit 0."""
    path, ids = dead
    code, out, _ = await anyio.to_thread.run_sync(_dead_cli, path, "retry", "--sink", "audit")
    assert (code, out) == (0, "2 dead letter(s) queued again\n")
    code, out, _ = await anyio.to_thread.run_sync(_dead_cli, path, "retry", "--sink", "audit")
    assert (code, out) == (0, "no dead letters for sink 'audit'\n")
    assert await _dead_letters(path) == [("console", ids[2])]


async def test_deadletters_drop_by_id_and_by_sink(dead: tuple[Path, list[str]]) -> None:
    """`drop --id` drops that dead letter, `drop --sink` the sink's; `--all` on none is no error."""
    path, ids = dead
    code, out, _ = await anyio.to_thread.run_sync(_dead_cli, path, "drop", "--id", ids[1])
    assert (code, out) == (0, "1 dead letter(s) dropped\n")
    assert await _dead_letters(path) == [("audit", ids[0]), ("console", ids[2])]
    code, out, _ = await anyio.to_thread.run_sync(_dead_cli, path, "drop", "--sink", "console")
    assert (code, out) == (0, "1 dead letter(s) dropped\n")
    assert await _dead_letters(path) == [("audit", ids[0])]
    code, out, _ = await anyio.to_thread.run_sync(_dead_cli, path, "drop", "--all")
    assert (code, out) == (0, "1 dead letter(s) dropped\n")
    code, out, _ = await anyio.to_thread.run_sync(_dead_cli, path, "drop", "--all")
    assert (code, out) == (0, "no dead letters\n")


@pytest.mark.parametrize(("command", "done"), [("retry", "queued again"), ("drop", "dropped")])
async def test_deadletters_an_id_that_is_not_a_dead_letter_is_an_error(
    dead: tuple[Path, list[str]], command: str, done: str
) -> None:
    """`--id evt_nope` exits 1 naming the id and changes nothing, even beside a real id."""
    path, ids = dead
    code, out, err = await anyio.to_thread.run_sync(
        _dead_cli, path, command, "--id", ids[0], "--id", "evt_nope"
    )
    assert code == 1 and out == ""
    assert err == (
        f"ftwatch: error: the id 'evt_nope' is not a dead letter, so nothing was {done}; "
        "`ftwatch deadletters list` shows them\n"
    )
    # A dead letter of another sink is not one of the sink named.
    code, _, err = await anyio.to_thread.run_sync(
        _dead_cli, path, command, "--sink", "audit", "--id", ids[2]
    )
    assert code == 1
    assert f"the id '{ids[2]}' is not a dead letter of sink 'audit'" in err
    assert len(await _dead_letters(path)) == 3


@pytest.mark.parametrize("args", [["list"], ["retry", "--all"], ["drop", "--id", "evt_x"]])
def test_deadletters_without_a_state_file_say_so_and_create_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    """With no state file at state.path, each command exits 2 saying so, and creates none."""
    path = _config(tmp_path, "\n[[sinks]]\nname = 'audit'\ntype = 'stdout'\n")
    state = tmp_path / "elsewhere" / "state.db"
    code, out, err = _run(
        "deadletters", *args, "--config", str(path), env={"FTWATCH_STATE_PATH": str(state)}
    )
    assert code == 2 and out == ""
    assert err == (
        f"ftwatch: error: there is no state file at {state} (the daemon creates it on its first "
        "run); check state.path in the config or $FTWATCH_STATE_PATH\n"
    )
    assert not state.parent.exists()


# -- simulate and watch, as processes -----------------------------------------------------------


async def test_watch_follows_jobs_to_their_end_with_documented_exit_codes() -> None:
    """`watch` exits 0 for a success, 1 for a failure and 2 for a cancellation.

    The simulator runs so fast that every demo job has ended when it is listed: this test is
    about the processes and their exit codes; tests/test_follow.py follows jobs through their
    statuses on a manual clock.
    """
    async with await anyio.open_process(
        [sys.executable, "-m", "watcher", "simulate", "--port", "0", "--speed", "1000000"],
        stderr=subprocess.DEVNULL,
    ) as sim:
        assert sim.stdout is not None
        with anyio.fail_after(30):
            line = (await sim.stdout.receive()).decode()
        url = line.split(" at ", 1)[1].split()[0]
        codes = {}
        try:
            for suffix in ("support-bot", "summarizer", "classifier"):
                async with httpx.AsyncClient() as client:
                    listed = await client.get(f"{url}/fine_tuning/jobs?limit=100")
                by_suffix = {j["user_provided_suffix"]: j["id"] for j in listed.json()["data"]}
                args = ["watch", by_suffix[suffix], "--base-url", url, "--interval", "0.05"]
                with anyio.fail_after(60):
                    code, out, _ = await anyio.to_thread.run_sync(lambda a=args: _run(*a))
                codes[suffix] = (code, out)
        finally:
            sim.terminate()
    assert codes["support-bot"][0] == 0
    assert "succeeded" in codes["support-bot"][1].splitlines()[-1]
    assert codes["summarizer"][0] == 1
    assert "invalid_training_file" in codes["summarizer"][1]
    assert codes["classifier"][0] == 2
    assert "cancelled" in codes["classifier"][1].splitlines()[-1]
