"""The webhook sink's config section: where to POST, how to sign, what to add, how long to wait.

Everything in it may be a secret: a receiver URL often carries a token in its query (or its
path), the signing secret is one, and extra headers usually hold ``Authorization``. So the
``repr`` and JSON dumps show only the URL's scheme, host and port and mask every header value
(Python-mode ``model_dump`` keeps them, for the code that sends), and validation errors never
echo what was given (``hide_input_in_errors``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_serializer, field_validator

from watcher.durations import Duration
from watcher.sinks import SinkConfig

__all__ = ["RESERVED_HEADERS", "WebhookConfig", "redact_url"]

_KEY_PREFIX = "whsec_"
_KEY_FORMAT_HELP = (
    "expected a secret that starts with 'whsec_' followed by base64, "
    "as OpenAI and Standard Webhooks issue"
)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# RFC 9110 token characters: what a header name may consist of.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: Headers the sink sets itself; an extra header may not replace them, or the signature and
#: the body's framing would no longer match what the receiver checks.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
    }
)


def redact_url(url: str) -> str:
    """Show a URL's scheme, host and port only, so that no token in it can leak.

    ``https://hooks.example.com/in/T0K3N?key=abc`` becomes ``https://hooks.example.com/***``.
    Credentials, path, query and fragment are all dropped: any of them may hold a token.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        shown += "/***"
    return shown


class WebhookConfig(SinkConfig):
    """A ``[[sinks]]`` table with ``type = "webhook"``.

    ``url``
        Where events are POSTed; ``http://`` or ``https://`` only. It may carry a token: it is
        never logged and never shown in full.
    ``secret``
        A Standard Webhooks signing secret (``whsec_`` + base64, as OpenAI issues them). When
        set, every delivery carries ``webhook-signature``, so receivers written for OpenAI's
        webhooks (``client.webhooks.unwrap``) verify it unchanged. Without it, deliveries are
        unsigned.
    ``headers``
        Extra headers sent with every delivery (``Authorization``, say). Their values are
        treated as secrets.
    ``timeout``
        How long one delivery may take in all (connecting, sending, the answer), as seconds or
        ``"10s"``. A receiver that takes longer counts as unavailable and is retried.
    """

    # A rejected value is often the secret itself or a URL with a token: never echo it.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str
    secret: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Annotated[Duration, Field(gt=0)] = 10.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        url = url.strip()
        try:
            parts = urlsplit(url)
            port = parts.port  # reading it checks that it is a number in range
        except ValueError:
            raise ValueError(
                "expected an http:// or https:// URL; this one cannot be parsed"
            ) from None
        if parts.scheme not in ("http", "https"):
            scheme = repr(parts.scheme) if parts.scheme else "no scheme"
            raise ValueError(f"expected an http:// or https:// URL, got {scheme}")
        if not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host name")
        if port == 0:
            raise ValueError("expected an http:// or https:// URL with a port other than 0")
        if any(c.isspace() for c in url):
            raise ValueError("expected an http:// or https:// URL without spaces")
        return url

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is None:
            return None
        value = secret.get_secret_value().strip()
        if not value.startswith(_KEY_PREFIX):
            raise ValueError(_KEY_FORMAT_HELP)
        encoded = value.removeprefix(_KEY_PREFIX)
        if not _BASE64.fullmatch(encoded):
            raise ValueError(_KEY_FORMAT_HELP)
        try:
            # Standard Webhooks accepts unpadded base64, so pad before checking it decodes.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(_KEY_FORMAT_HELP) from None
        if not key:
            raise ValueError(_KEY_FORMAT_HELP)
        return SecretStr(value)

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(
                    f"header {name!r} is set by the webhook sink itself and cannot be overridden"
                )
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"the value of header {name!r} contains a line break or NUL")
            if not value.isascii():
                raise ValueError(f"the value of header {name!r} must be ASCII text")
        return headers

    @field_serializer("url", when_used="json")
    def _json_url(self, url: str) -> str:
        # A JSON dump is for showing (SecretStr is masked there too); Python dumps keep the URL.
        return redact_url(url)

    @field_serializer("headers", when_used="json")
    def _json_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return dict.fromkeys(headers, "***")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # str() and repr() both come through here: mask everything that may hold a token.
        for key, value in super().__repr_args__():
            if key == "url":
                yield key, redact_url(self.url)
            elif key == "headers":
                yield key, dict.fromkeys(self.headers, "***")
            else:
                yield key, value
