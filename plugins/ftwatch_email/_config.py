"""The ``[[sinks]]`` keys of an email sink: the SMTP server, how to reach it, and who reads."""

from __future__ import annotations

import ipaddress
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Final, Literal, Self

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from watcher.durations import Duration
from watcher.sinks import SinkConfig

__all__ = ["DEFAULT_PORTS", "EmailConfig", "TlsMode", "envelope_address", "is_loopback"]

#: How the connection is protected: STARTTLS after a plain greeting, TLS from the first byte,
#: or nothing at all.
TlsMode = Literal["starttls", "implicit", "none"]

#: The port each TLS mode uses unless ``port`` says otherwise: submission, submissions, smtp.
DEFAULT_PORTS: Final[dict[str, int]] = {"starttls": 587, "implicit": 465, "none": 25}

_ADDRESS_EXAMPLE = "an address such as ftwatch@example.com or 'ftwatch <ftwatch@example.com>'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback IP address."""
    name = host.strip().rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def envelope_address(value: str) -> str:
    """The bare ``local@domain`` of an address that may carry a display name."""
    return parseaddr(value)[1]


def _address(value: str) -> str:
    """``value`` stripped, when it is one mail address a header and an envelope can carry."""
    text = value.strip()
    # A line break or control character would start a new header (header injection).
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"expected {_ADDRESS_EXAMPLE}, on one line")
    bare = envelope_address(text)
    local, at, domain = bare.rpartition("@")
    if not at or not local or not domain or "@" in local or any(c.isspace() for c in bare):
        raise ValueError(f"expected {_ADDRESS_EXAMPLE}")
    return text


class EmailConfig(SinkConfig):
    """An email sink's keys, besides the routing and retry keys every sink has.

    ``host`` is the SMTP server; ``tls`` how the connection is protected: ``starttls`` (the
    default: a plain greeting, then STARTTLS, which the server must offer), ``implicit`` (TLS
    from the first byte, "SMTPS") or ``none``. ``none`` sends everything, a password too, in
    the clear: it is allowed to a loopback host (a local relay such as Postfix on 127.0.0.1)
    and to any other host only with ``allow_plaintext = true``. ``port`` defaults by mode:
    587, 465, 25. The server's certificate is checked against the system's CAs, or against
    ``ca_file`` (a PEM file, relative to the config file) for a private CA.

    ``username`` and ``password`` log in (both or neither); the password is a secret: never in
    ``repr``, errors, logs or ``ftwatch check``. ``from`` is the sender, ``to`` and ``cc`` the
    recipients; ``subject_prefix`` starts every subject. ``timeout`` bounds one whole delivery
    (connect, TLS, login, send).
    """

    # pydantic would otherwise quote the rejected input, a password perhaps, in its error;
    # `from` is a Python keyword, so the field is `sender` with `from` as its name in the file.
    model_config = ConfigDict(hide_input_in_errors=True, populate_by_name=True)

    host: str
    port: int = Field(default=0, ge=0, le=65535, strict=True)
    tls: TlsMode = "starttls"
    allow_plaintext: bool = Field(default=False, strict=True)
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    subject_prefix: str = "[ftwatch]"
    timeout: Duration = 30.0

    @model_validator(mode="before")
    @classmethod
    def _port_by_mode(cls, data: Any) -> Any:
        # 0 in the file, or no port at all, means the mode's usual port; resolved here so that
        # `ftwatch check` shows the port the sink will use.
        if isinstance(data, dict) and not data.get("port"):
            mode = data.get("tls", "starttls")
            if isinstance(mode, str) and mode in DEFAULT_PORTS:
                return {**data, "port": DEFAULT_PORTS[mode]}
        return data

    @field_validator("host")
    @classmethod
    def _host_is_a_name(cls, value: str) -> str:
        host = value.strip()
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            return str(ipaddress.IPv6Address(bare))
        except ValueError:
            pass
        if not bare or any(c.isspace() or c in "/@:[]" for c in bare):
            raise ValueError(
                "expected the SMTP server's host name or IP address, such as smtp.example.com, "
                "without a scheme or port (the port is its own key)"
            )
        return bare

    @field_validator("sender")
    @classmethod
    def _sender_is_an_address(cls, value: str) -> str:
        return _address(value)

    @field_validator("to", "cc", mode="before")
    @classmethod
    def _one_address_is_a_list(cls, value: object) -> object:
        # `to = "ml@example.com"` means what it says: one recipient.
        return [value] if isinstance(value, str) else value

    @field_validator("to", "cc")
    @classmethod
    def _recipients_are_addresses(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @field_validator("username")
    @classmethod
    def _username_is_one_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(ord(c) < 32 for c in value)):
            raise ValueError("expected the SMTP login name, on one line")
        return None if value is None else value.strip()

    @field_validator("password")
    @classmethod
    def _password_is_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("expected the SMTP password (an empty one cannot log in)")
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix_is_one_line(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value) > 100:
            raise ValueError("expected a short prefix on one line, such as '[ftwatch]'")
        return value.strip()

    @field_validator("ca_file", mode="before")
    @classmethod
    def _ca_file_not_empty(cls, value: object) -> object:
        # Path("") would quietly mean the current directory.
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a PEM file of CA certificates, such as 'private-ca.pem'")
        return value

    @field_validator("ca_file")
    @classmethod
    def _expand_home(cls, path: Path | None) -> Path | None:
        return None if path is None else path.expanduser()

    @field_validator("timeout")
    @classmethod
    def _timeout_is_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("expected a positive duration such as 30 or '30s'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "give username and password together (the SMTP login), or neither to send "
                "without logging in"
            )
        if self.tls == "none" and not is_loopback(self.host) and not self.allow_plaintext:
            raise ValueError(
                f'tls = "none" sends every message and the password unencrypted to {self.host}; '
                'use tls = "starttls" or "implicit", or set allow_plaintext = true to accept that'
            )
        if self.tls == "none" and self.ca_file is not None:
            raise ValueError('ca_file has no use with tls = "none"; remove one of them')
        return self

    @property
    def recipients(self) -> list[str]:
        """Every envelope recipient, ``to`` then ``cc``, as bare addresses, each once."""
        return list(dict.fromkeys(envelope_address(a) for a in [*self.to, *self.cc]))
