"""The Discord sink end to end: through the daemon, `ftwatch sinks test` and `ftwatch check`.

The daemon (``Watcher`` on the simulator, polled by hand on a ManualClock) posts to the
Discord-like receiver of tests/discord_receiver.py over a real loopback socket.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
from click.testing import CliRunner
from structlog.testing import capture_logs
from tests.discord_receiver import TOKEN, WEBHOOK_ID, DiscordLike, limit_errors

from ftwatch_discord import DiscordConfig
from watcher import RetryPolicy, SourceConfig, Watcher
from watcher.cli import main
from watcher.clock import ManualClock
from watcher.serving import serve_asgi
from watcher.simulator import Simulator
from watcher.testing import simulator_transport

START = 1_750_000_000.0
HOUR = 3600.0
HOOK_PATH = f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}"
RED, AMBER, GREEN = 0xED4245, 0xFAA61A, 0x57F287


def _watcher(sim: Simulator, clock: ManualClock, state: Path, url: str, **source: Any) -> Watcher:
    sink = DiscordConfig(
        name="discord",
        type="discord",
        url=url + HOOK_PATH,
        retry=RetryPolicy(initial_backoff=1, max_backoff=8),
    )
    return Watcher(
        sources=[SourceConfig(name="sim", base_url="http://sim/v1", jitter=0, **source)],
        sinks=[sink],
        state_path=state,
        clock=clock,
        transport=simulator_transport(sim),
        autostart=False,
    )


def _embeds(app: DiscordLike) -> list[dict[str, Any]]:
    return [embed for request in app.received for embed in request.body["embeds"]]


async def test_a_failed_job_and_a_stall_reach_discord_as_the_right_embeds(tmp_path: Path) -> None:
    """A failure arrives red with its error, a stall amber, and moving again green, each
    confirmed with ?wait=true and within Discord's limits; nobody is pinged."""
    clock = ManualClock(START)
    sim = Simulator(clock, seed=3)
    error = {"code": "invalid_training_file", "message": "@everyone row 7 is not JSON"}
    failing = sim.create_job(
        created_at=START, suffix="nightly", script=[(0, "running"), (60, "failed", error)]
    )
    stuck = sim.create_job(
        created_at=START - 5 * HOUR, script=[(0, "queued"), (5 * HOUR + 120, "running")]
    )
    app = DiscordLike()
    async with serve_asgi(app) as url, _watcher(sim, clock, tmp_path / "s.db", url) as watcher:
        await watcher.poll_once()  # the silent baseline
        clock.advance(60)
        await watcher.poll_once()  # the failure, and the job queued for 5 h is stalled
        clock.advance(60)
        await watcher.poll_once()  # the stuck job runs
        await watcher.flush()
    assert all(r.query == {"wait": ["true"]} and r.path == HOOK_PATH for r in app.received)
    assert all(limit_errors(r.body) == [] for r in app.received)
    assert all(r.body["allowed_mentions"] == {"parse": []} for r in app.received)
    by_title = {e["title"]: e for e in _embeds(app)}
    failed = by_title["❌ Fine-tuning job failed · nightly"]
    assert failed["color"] == RED
    assert failed["description"] == "**Error message**\n\\@everyone row 7 is not JSON"
    fields = {f["name"]: f["value"] for f in failed["fields"]}
    assert fields["Job"] == f"`{failing}`"
    assert fields["Error code"] == "`invalid_training_file`"
    stalled = next(
        e for t, e in by_title.items() if t.startswith("⏳ Fine-tuning job stuck in queue")
    )
    assert stalled["color"] == AMBER
    assert {f["name"]: f["value"] for f in stalled["fields"]}["Job"] == f"`{stuck}`"
    assert by_title["▶️ Fine-tuning job moving again"]["color"] == GREEN


async def test_a_429_is_waited_out_as_long_as_discord_asks_then_lands(tmp_path: Path) -> None:
    """Discord's 429 with retry_after 42.5 in its body: the next try comes 42.5 s later, not
    sooner (the header's 3 s is not what counts), and is delivered."""
    clock = ManualClock(START)
    sim = Simulator(clock, seed=9)
    sim.create_job(created_at=START, script=[(0, "running")])
    app = DiscordLike()
    limited = b'{"message": "You are being rate limited.", "retry_after": 42.5, "global": false}'
    app.script.append((429, {"Retry-After": "3", "X-RateLimit-Reset-After": "42.5"}, limited))
    state = tmp_path / "s.db"
    async with (
        serve_asgi(app) as url,
        _watcher(sim, clock, state, url, emit_existing=True) as watcher,
    ):
        [event] = await watcher.poll_once()
        await watcher.flush()
        worker = watcher.workers["discord"]
        assert len(app.received) == 1 and worker.delivered == 0
        assert worker.next_due is not None and worker.next_due >= START + 42.5
        clock.set(START + 42)
        await watcher.flush()
        assert len(app.received) == 1  # not sooner than Discord asked
        clock.set(worker.next_due)
        await watcher.flush()
        assert worker.delivered == 1
    first, second = app.received
    assert first.body == second.body
    assert f"event {event.id}" in second.body["embeds"][0]["footer"]["text"]


# ---------------------------------------------------------------------------------------------
# The command line


def _config(tmp: Path, sink: str) -> Path:
    path = tmp / "ftwatch.toml"
    path.write_text(
        f'[state]\npath = "{tmp / "state.db"}"\n\n[[sources]]\nname = "openai"\n'
        f'api_key = "sk-test"\n\n[[sinks]]\nname = "ml-discord"\ntype = "discord"\n{sink}',
        encoding="utf-8",
    )
    return path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


async def test_sinks_test_posts_an_embed_marked_as_a_test(tmp_path: Path) -> None:
    """`ftwatch sinks test` reaches the receiver as a test embed and prints the message id."""
    app = DiscordLike()
    async with serve_asgi(app) as url:
        path = _config(tmp_path, f'url = "{url}{HOOK_PATH}"\n')
        with capture_logs() as logs:
            code, out, err = await anyio.to_thread.run_sync(
                _run, "sinks", "test", "ml-discord", "--config", str(path)
            )
    assert code == 0, err
    [request] = app.received
    [embed] = request.body["embeds"]
    assert embed["title"].startswith("🧪 Test from ftwatch: Fine-tuning job succeeded")
    assert "a test message, no job changed" in embed["footer"]["text"]
    assert limit_errors(request.body) == []
    assert re.fullmatch(
        r"ok: sample event evt_test_[0-9a-f]{24} delivered to sink 'ml-discord' in \d+ ms "
        rf"\(HTTP 200, message {app.next_id}\)\n",
        out,
    )
    assert TOKEN not in out + err + repr(logs)


def test_check_masks_the_webhook_url_and_names_a_missing_or_wrong_one(tmp_path: Path) -> None:
    """`check` shows the url masked; a missing or malformed url is one sentence, exit 2."""
    path = _config(tmp_path, f'url = "https://discord.com{HOOK_PATH}"\nusername = "ml bot"\n')
    code, out, err = _run("check", "--config", str(path))
    assert code == 0, err
    assert TOKEN not in out + err
    assert '"url": "********"' in out and '"username": "ml bot"' in out
    for body, needle in [
        ("", "sinks[0]: missing required key 'url'"),
        (
            f'url = "https://discord.com/channels/1/{TOKEN}"\n',
            "sinks[0].url: expected a Discord webhook URL such as "
            "https://discord.com/api/webhooks/ID/TOKEN",
        ),
    ]:
        code, out, err = _run("check", "--config", str(_config(tmp_path, body)))
        assert code == 2
        assert needle in err and "ftwatch.toml" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert TOKEN not in out + err
