"""The ``[[sinks]]`` keys of a Slack sink: an incoming webhook, or a bot token and a channel."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import ConfigDict, SecretStr, field_validator, model_validator

from watcher.durations import Duration
from watcher.sinks import SinkConfig

__all__ = ["SlackConfig"]

_WEBHOOK_EXAMPLE = "https://hooks.slack.com/services/T000/B000/XXXX"


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        port = parts.port  # reading it checks that it is a number up to 65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


class SlackConfig(SinkConfig):
    """A Slack sink's keys, besides the routing and retry keys every sink has.

    Exactly one of two modes:

    - ``webhook_url``: a Slack incoming webhook (it names its channel itself);
    - ``token`` and ``channel``: a bot token posting with ``chat.postMessage`` to ``channel``
      (an ID such as ``C0123456789`` or a name such as ``#ml-alerts``), at ``api_url``.

    ``timeout`` bounds each request. The webhook URL and the token are secrets: they never appear
    in ``repr``, in errors or in logs, and errors about this section never quote its input.
    """

    # pydantic would otherwise quote the rejected input, a webhook URL or a token, in its error.
    model_config = ConfigDict(hide_input_in_errors=True)

    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    #: Slack's Web API root; a setting so that tests can point the sink at a local receiver.
    api_url: str = "https://slack.com/api"
    timeout: Duration = 10.0

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_a_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _is_http_url(value.get_secret_value().strip()):
            raise ValueError(
                f"expected a Slack incoming-webhook URL such as {_WEBHOOK_EXAMPLE} "
                "(an http or https URL with a host)"
            )
        return None if value is None else SecretStr(value.get_secret_value().strip())

    @field_validator("token")
    @classmethod
    def _token_is_one_word(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value().strip()
        if not token or any(c.isspace() for c in token):
            raise ValueError("expected a Slack bot token such as xoxb-..., one word without spaces")
        return SecretStr(token)

    @field_validator("channel")
    @classmethod
    def _channel_is_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("expected a channel ID such as C0123456789 or a name such as #alerts")
        return None if value is None else value.strip()

    @field_validator("api_url")
    @classmethod
    def _api_url_is_a_url(cls, value: str) -> str:
        if not _is_http_url(value.strip()):
            raise ValueError("expected Slack's Web API root, such as https://slack.com/api")
        return value.strip().rstrip("/")

    @field_validator("timeout")
    @classmethod
    def _timeout_is_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("expected a positive duration such as 10 or '10s'")
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> SlackConfig:
        has_webhook = self.webhook_url is not None
        has_bot = self.token is not None or self.channel is not None
        if has_webhook and has_bot:
            raise ValueError(
                "give either webhook_url (an incoming webhook) or token and channel "
                "(a bot token posting with chat.postMessage), not both"
            )
        if not has_webhook and not has_bot:
            raise ValueError(
                f"a slack sink needs webhook_url (an incoming webhook such as {_WEBHOOK_EXAMPLE}) "
                "or token and channel (a bot token and the channel it posts to)"
            )
        if self.token is not None and self.channel is None:
            raise ValueError(
                "token needs channel: the channel ID or name the bot posts to, "
                "such as C0123456789 or #ml-alerts"
            )
        if self.channel is not None and self.token is None:
            raise ValueError("channel needs token: the bot token (xoxb-...) that posts to it")
        return self
