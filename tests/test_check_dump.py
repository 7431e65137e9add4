"""`ftwatch check` prints the resolved config with no token in it: not in a webhook URL's path
or query, not in a header value, not in a Slack URL, not a PagerDuty routing key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PATH_TOKEN = "T0K3N-in-the-path-4242"
QUERY_TOKEN = "q-token-5151"
HEADER_TOKEN = "hdr-token-6363"
SLACK_API_TOKEN = "slack-api-path-7777"
DISCORD_TOKEN = "dIsCoRd-t0ken-8989"
PAGERDUTY_KEY = "R0utingKeyS3cretS3cretS3cret0042"

CONFIG = f"""\
[[sources]]
name = "sim"
base_url = "http://127.0.0.1:8765/v1"

[[sinks]]
name = "hooks"
type = "webhook"
url = "https://hooks.example.test:8443/in/{PATH_TOKEN}?key={QUERY_TOKEN}"
headers = {{ Authorization = "Bearer {HEADER_TOKEN}", X-Team = "ml" }}

[[sinks]]
name = "bot"
type = "slack"
token = "xoxb-1-2"
channel = "#ml"
api_url = "https://slack.example.test/{SLACK_API_TOKEN}/api"

[[sinks]]
name = "chat"
type = "discord"
url = "https://discord.com/api/webhooks/123/{DISCORD_TOKEN}?thread_id=9"

[[sinks]]
name = "on-call"
type = "pagerduty"
routing_key = "{PAGERDUTY_KEY}"
"""


def test_check_masks_sink_url_paths_and_header_values(tmp_path: Path) -> None:
    """The dump shows each sink URL's scheme, host and port only, and masks header values,
    while the source's base_url (no secret in its path) stays readable."""
    path = tmp_path / "ftwatch.toml"
    path.write_text(CONFIG, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FTWATCH_STATE_PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    tokens = (PATH_TOKEN, QUERY_TOKEN, HEADER_TOKEN, SLACK_API_TOKEN, "xoxb-1-2", PAGERDUTY_KEY)
    for token in tokens:
        assert token not in proc.stdout + proc.stderr
    resolved = json.loads(proc.stdout)
    hooks, bot, _discord, pager = resolved["sinks"]
    assert pager["routing_key"] == "********"
    assert pager["api_url"] == "https://events.pagerduty.com"
    assert hooks["url"] == "https://hooks.example.test:8443/********"
    assert hooks["headers"] == {"Authorization": "********", "X-Team": "********"}
    assert bot["api_url"] == "https://slack.example.test/********"
    assert bot["token"] == "********"
    assert DISCORD_TOKEN not in proc.stdout + proc.stderr
    assert [s["url"] for s in resolved["sinks"] if s["type"] == "discord"] == ["********"]
    assert resolved["sources"][0]["base_url"] == "http://127.0.0.1:8765/v1"
