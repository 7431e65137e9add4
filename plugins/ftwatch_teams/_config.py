"""The ``[[sinks]]`` keys of a Teams sink: the Workflows webhook URL and how long to wait."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator

from watcher.durations import Duration
from watcher.sinks import SinkConfig

__all__ = ["TeamsConfig"]

_URL_HELP = (
    "expected the HTTP URL of a Teams workflow's 'When a Teams webhook request is received' "
    "trigger, such as https://prod-00.westus.logic.azure.com/workflows/.../invoke?...&sig=..."
)


class TeamsConfig(SinkConfig):
    """A ``[[sinks]]`` table with ``type = "teams"``.

    ``url``
        The workflow's webhook URL (Teams: a channel's ``Workflows`` > "Post to a channel when a
        webhook request is received"). Its ``sig=`` query parameter is a signature that lets
        anyone post, so it is a secret: it never appears in ``repr``, errors, ``check`` output
        or logs, and errors about this section never quote its input.
    ``timeout``
        How long one delivery may take in all, as seconds or ``"10s"``; a workflow that takes
        longer counts as unavailable and is retried.
    """

    # pydantic would otherwise quote the rejected input, the URL with its signature.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: SecretStr
    timeout: Annotated[Duration, Field(gt=0)] = 10.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value().strip()
        try:
            parts = urlsplit(url)
            port = parts.port  # reading it checks that it is a number up to 65535
        except ValueError:
            raise ValueError(_URL_HELP) from None
        if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
            raise ValueError(_URL_HELP)
        if any(c.isspace() for c in url):
            raise ValueError(_URL_HELP + ", without spaces")
        return SecretStr(url)
