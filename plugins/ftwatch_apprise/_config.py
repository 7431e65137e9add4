"""The ``[[sinks]]`` keys of an Apprise sink: one or more service URLs, a format and a timeout."""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from watcher.durations import Duration
from watcher.errors import PluginError
from watcher.sinks import SinkConfig

from . import _library

__all__ = ["AppriseConfig"]

_URL_FORMS: Final = "https://github.com/caronc/apprise/wiki"
#: A scheme worth naming in an error: short and plain, so never a token pasted by mistake.
_SCHEME: Final = re.compile(r"([a-z][a-z0-9+.-]{0,15})://", re.IGNORECASE)


def _scheme_of(url: str) -> str | None:
    found = _SCHEME.match(url)
    return found.group(1).lower() if found else None


class AppriseConfig(SinkConfig):
    """An Apprise sink's keys, besides the routing and retry keys every sink has.

    - ``urls``: one Apprise URL or a list of them (``ntfy://...``, ``tgram://...``,
      ``matrixs://...``, ``pover://...``, ``json://...``); each event goes to every one. Each
      is a secret.
    - ``body_format``: ``text`` (default) or ``markdown``; Apprise converts it for each service.
    - ``timeout``: how long one notification may take in all, per URL.

    When Apprise is installed each URL is checked here, so that ``ftwatch check`` finds a URL
    Apprise cannot use; errors about this section never quote its input.
    """

    # pydantic would otherwise quote the rejected input, a URL holding a token, in its error.
    model_config = ConfigDict(hide_input_in_errors=True)

    urls: list[SecretStr] = Field(min_length=1)
    body_format: Literal["text", "markdown"] = "text"
    timeout: Duration = 10.0

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # One service is a plain string in the file; a list is the general case.
        return [value] if isinstance(value, str | SecretStr) else value

    @field_validator("urls")
    @classmethod
    def _urls_are_apprise_urls(cls, urls: list[SecretStr]) -> list[SecretStr]:
        cleaned = [SecretStr(url.get_secret_value().strip()) for url in urls]
        try:
            _library.require()
        except PluginError:
            # Checked when the sink is built, which then says how to install Apprise.
            return cleaned
        for index, url in enumerate(cleaned):
            text = url.get_secret_value()
            if _library.parse(text) is not None:
                continue
            scheme = _scheme_of(text)
            what = f"a {scheme}:// URL" if scheme else "a URL without a scheme such as ntfy://"
            raise ValueError(
                f"urls[{index}] is {what} that Apprise cannot use (an unknown scheme, or a part "
                f"missing); see {_URL_FORMS} for each service's URL form"
            )
        return cleaned

    @field_validator("timeout")
    @classmethod
    def _timeout_is_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("expected a positive duration such as 10 or '10s'")
        return value
