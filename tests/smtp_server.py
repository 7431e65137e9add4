"""A real SMTP server for the email sink's tests: aiosmtpd in its own thread, on loopback.

The handler keeps every message it accepted, parsed with the stdlib ``email`` package, with
its session (TLS or not, logged in or not); a test waits on its queue with a timeout, never
with a sleep. TLS uses a private CA made by trustme, trusted by the sink through ``ca_file``.
"""

from __future__ import annotations

import queue
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import anyio.to_thread
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from helpers import free_port

#: The one login the server takes.
USER = "ftwatch@example.test"
PASSWORD = "pw-Sekrit-4711-hunter2"


@dataclass
class Mailbox:
    """aiosmtpd's handler: keeps what it accepted, refuses what the test scripted.

    A recipient starting with ``refused`` gets a 550, one starting with ``later`` a 450;
    ``data_answer`` replaces the answer to DATA (the message is then not kept).
    """

    received: queue.Queue[tuple[Any, EmailMessage]] = field(default_factory=queue.Queue)
    data_answer: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        """Refuse the scripted recipients."""
        if address.startswith("refused"):
            return "550 5.1.1 <" + address + "> no such user here " + "<b>x</b>" * 60
        if address.startswith("later"):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message with its session (TLS? logged in?) unless a test scripted an answer."""
        if self.data_answer is not None:
            return self.data_answer
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.put((session, parsed))
        return "250 2.0.0 queued as 42"

    def take(self, timeout: float = 10.0) -> tuple[Any, EmailMessage]:
        """The next message received, waiting at most ``timeout`` seconds."""
        return self.received.get(timeout=timeout)

    async def next(self) -> tuple[Any, EmailMessage]:
        """:meth:`take` without blocking the event loop (for a daemon running meanwhile)."""
        return await anyio.to_thread.run_sync(self.take)


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class Tls:
    """A private CA, its PEM file, and the server side of a certificate it signed."""

    ca_file: Path
    server: ssl.SSLContext


def make_tls(directory: Path) -> Tls:
    """A CA nobody trusts but the tests, and a certificate for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    ca_file = directory / "private-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    return Tls(ca_file, server)


@contextmanager
def smtp_server(
    *, starttls: ssl.SSLContext | None = None, implicit: ssl.SSLContext | None = None
) -> Iterator[tuple[Mailbox, int]]:
    """aiosmtpd on a free loopback port; logins are checked (and refused without TLS).

    aiosmtpd counts only STARTTLS as TLS for ``auth_require_tls``: with implicit TLS every
    byte is encrypted anyway, so the check is off there.
    """
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=starttls,
        ssl_context=implicit,
        authenticator=authenticate,
        auth_require_tls=implicit is None,
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and the HTML of a multipart/alternative message."""
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    # The wire's CRLF line ends, as a reader's client shows them: one line break each.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")
