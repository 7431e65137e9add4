"""The ``[[sinks]]`` keys of a Discord sink: a channel webhook URL, and how the poster looks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from watcher.durations import Duration
from watcher.sinks import SinkConfig

__all__ = ["USERNAME_MAX", "DiscordConfig", "redact_url"]

_WEBHOOK_EXAMPLE = "https://discord.com/api/webhooks/ID/TOKEN"
_WEBHOOK_HELP = (
    f"expected a Discord webhook URL such as {_WEBHOOK_EXAMPLE} "
    "(a channel's Integrations > Webhooks > Copy Webhook URL)"
)
#: The path of a webhook URL: ``/api[/v10]/webhooks/<id>/<token>``. The host is not checked, so
#: that tests (and a proxy) may stand in for discord.com.
_WEBHOOK_PATH = re.compile(r"/api(?:/v\d+)?/webhooks/\d{1,20}/[A-Za-z0-9._-]{1,200}/?")
#: Discord's limit on a webhook's display name.
USERNAME_MAX = 80
#: Words Discord refuses in a webhook's name (its API answers 400 to every message otherwise).
_FORBIDDEN_NAME_WORDS = ("discord", "clyde")


def redact_url(url: str) -> str:
    """A URL's scheme and host only (``https://discord.com/***``): its path holds the token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "") + "/***"


def _http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        port = parts.port  # reading it checks that it is a number up to 65535
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and port != 0
        and not any(c.isspace() for c in value)
    )


class DiscordConfig(SinkConfig):
    """A ``[[sinks]]`` table with ``type = "discord"``, besides the routing and retry keys.

    ``url``
        The channel webhook's URL, ``https://discord.com/api/webhooks/ID/TOKEN``: a secret
        (the token is in its path), never shown in ``repr``, errors, logs or ``ftwatch check``.
        A ``thread_id`` in its query is kept, to post into a thread.
    ``username``, ``avatar_url``
        The name and picture the messages are posted under; default: the webhook's own.
    ``timeout``
        How long one delivery may take in all (connect, send, Discord's answer).
    """

    # A rejected value is the webhook URL, token and all: never echo it.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: SecretStr
    username: str | None = None
    avatar_url: str | None = None
    timeout: Annotated[Duration, Field(gt=0)] = 10.0

    @field_validator("url")
    @classmethod
    def _webhook_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value().strip()
        if not _http_url(url) or not _WEBHOOK_PATH.fullmatch(urlsplit(url).path):
            raise ValueError(_WEBHOOK_HELP)
        return SecretStr(url)

    @field_validator("username")
    @classmethod
    def _display_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip()
        if not 1 <= len(name) <= USERNAME_MAX:
            raise ValueError(f"expected a name of 1 to {USERNAME_MAX} characters")
        if any(word in name.lower() for word in _FORBIDDEN_NAME_WORDS):
            raise ValueError(
                "Discord refuses a webhook name holding 'discord' or 'clyde'; choose another"
            )
        return name

    @field_validator("avatar_url")
    @classmethod
    def _avatar_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _http_url(value.strip()):
            raise ValueError("expected an http:// or https:// URL of an image")
        return value.strip()

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # SecretStr already hides the URL; the host alone says which Discord it goes to.
        for key, value in super().__repr_args__():
            yield key, (redact_url(self.url.get_secret_value()) if key == "url" else value)
