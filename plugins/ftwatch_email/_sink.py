"""The email sink: one SMTP conversation per event, and what the server's replies mean.

Each delivery connects (with STARTTLS or implicit TLS as configured), logs in when a username is
given, sends the message to every ``to`` and ``cc`` address and says QUIT. A whole delivery
has one deadline, ``timeout``. The server's answers become the outcomes the dispatcher
understands:

- a 2xx for the message: delivered (recipients refused while others took it are logged,
  not retried: a retry would send the others a second copy);
- a 4xx reply, a refused or dropped connection, a timeout: :class:`SinkUnavailable`, retried;
- a 5xx reply, a recipient refused (550) among them: :class:`SinkRejected`, a dead letter
  whose reason quotes the server's reply, bounded;
- the username or password refused (535, 534, 530), a server that does not offer STARTTLS or
  login, a certificate that is not trusted: :class:`SinkDisabled`. Nothing can get through
  until someone changes the config or the server, so the sink stops until the daemon restarts
  and its queue is kept: no event is lost, and none is dead-lettered for a wrong password.

Errors and logs name the host, the port and the reply code, never the password; the reply
text of a failed login is never quoted (a server may echo what it was sent).
"""

from __future__ import annotations

import ssl
from typing import ClassVar, Final, NoReturn, TypeVar

import aiosmtplib
import anyio
import structlog

from watcher.errors import ConfigError, SinkDisabled, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent
from watcher.facts import fit, one_line
from watcher.sinks import SinkBase

from ._config import EmailConfig, envelope_address
from ._message import build_email

__all__ = ["EmailSink", "REPLY_MAX"]

log = structlog.get_logger(__name__)

#: The most of a server's reply text an error or a receipt quotes.
REPLY_MAX: Final = 200
#: Replies that say the login itself is wrong, or that the server demands one it cannot get.
_AUTH_CODES: Final = frozenset({530, 534, 535, 538})

_E = TypeVar("_E", bound=BaseException)


def _reply(text: str) -> str:
    """A server's reply text as one printable line of at most :data:`REPLY_MAX` characters."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    return fit(one_line(printable), REPLY_MAX) or "no text"


def _tls_context(config: EmailConfig) -> ssl.SSLContext | None:
    """The context that checks the server's certificate: the system's CAs, or ``ca_file``."""
    if config.tls == "none":
        return None
    if config.ca_file is None:
        return ssl.create_default_context()
    where = config.ca_file
    if not where.is_file():
        raise ConfigError(
            f"email sink {config.name!r}: ca_file {where} does not exist or is not a file; "
            "give the PEM file of the CA that signed the SMTP server's certificate",
            key="ca_file",
        )
    try:
        return ssl.create_default_context(cafile=str(where))
    except (ssl.SSLError, OSError, ValueError):
        raise ConfigError(
            f"email sink {config.name!r}: ca_file {where} holds no readable PEM certificate; "
            "give the PEM file of the CA that signed the SMTP server's certificate",
            key="ca_file",
        ) from None


def _in_chain(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of type ``kind`` in ``exc``'s chain of causes, if any."""
    seen: BaseException | None = exc
    for _ in range(10):  # a cycle of causes is possible; ten links is plenty
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class EmailSink(SinkBase):
    """Sends each event as one email (text and HTML) over SMTP; see :class:`EmailConfig`."""

    config_model: ClassVar[type[EmailConfig]] = EmailConfig
    config: EmailConfig

    def __init__(self, config: EmailConfig) -> None:
        super().__init__(config)
        # Built once, at startup: a wrong ca_file is a config error, not a failed delivery.
        self._tls = _tls_context(config)

    @property
    def server(self) -> str:
        """``host:port``, as errors and logs name the server."""
        return f"{self.config.host}:{self.config.port}"

    def _client(self) -> aiosmtplib.SMTP:
        config = self.config
        return aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.tls == "implicit",
            start_tls=config.tls == "starttls",
            tls_context=self._tls,
            timeout=config.timeout,
        )

    async def send(self, event: BaseEvent) -> str:
        """Send ``event`` as one email; returns the server's answer to the message."""
        config = self.config
        message = build_email(event, config)
        recipients = config.recipients
        try:
            with anyio.fail_after(config.timeout):
                async with self._client() as client:
                    if config.username is not None and config.password is not None:
                        await client.login(config.username, config.password.get_secret_value())
                    refused, answer = await client.send_message(
                        message, sender=envelope_address(config.sender), recipients=recipients
                    )
        except aiosmtplib.SMTPAuthenticationError as exc:
            self._login_refused(exc.code)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._recipients_refused(exc.recipients)
        except aiosmtplib.SMTPResponseException as exc:
            self._replied(exc.code, exc.message)
        except TimeoutError:
            self._unavailable(f"timed out after {config.timeout:g}s")
        except (OSError, aiosmtplib.SMTPException) as exc:
            self._failed(exc)
        if refused:
            # The others have the message: sending it again would give them a second copy.
            log.warning(
                "email_recipients_refused",
                sink=self.name,
                event_id=event.id,
                refused={
                    r: f"{reply.code} {_reply(reply.message)}" for r, reply in refused.items()
                },
            )
        log.debug("email_delivered", sink=self.name, event_id=event.id, job_id=event.job_id)
        shown = f"{len(recipients) - len(refused)} of {len(recipients)} recipients"
        return f"{self.server} accepted it for {shown}: {_reply(answer)}"

    def _failed(self, exc: OSError | aiosmtplib.SMTPException) -> NoReturn:
        """What a failure without an SMTP reply code means: the TLS, the connection, a feature."""
        untrusted = _in_chain(exc, ssl.SSLCertVerificationError)
        if untrusted is not None:
            self._untrusted(untrusted)
        text = str(exc)
        # aiosmtplib says so in words: a server without STARTTLS, AUTH or SMTPUTF8.
        if isinstance(exc, aiosmtplib.SMTPNotSupported) or "not supported" in text:
            self._not_supported(text)
        if _in_chain(exc, ConnectionRefusedError) is not None:
            self._unavailable("refused the connection")
        handshake = _in_chain(exc, ssl.SSLError)
        if handshake is not None:
            self._unavailable(f"failed the TLS handshake ({_reply(handshake.reason or '')})")
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
            self._unavailable("closed the connection")
        # aiosmtplib's wording names the host and port, never a secret.
        self._unavailable(f"could not be reached ({_reply(text)})")

    def _unavailable(self, what: str, code: int | None = None) -> NoReturn:
        log.warning("email_unavailable", sink=self.name, server=self.server, error=what, code=code)
        raise SinkUnavailable(
            f"the SMTP server {self.server} {what}", sink=self.name, status_code=code
        )

    def _replied(self, code: int, text: str) -> NoReturn:
        said = f"answered {code} {_reply(text)}"
        if 400 <= code < 500:
            self._unavailable(said, code)
        if code in _AUTH_CODES:
            self._login_refused(code)
        raise SinkRejected(
            f"the SMTP server {self.server} refused the message: {code} {_reply(text)}",
            sink=self.name,
            status_code=code,
        )

    def _recipients_refused(self, refused: list[aiosmtplib.SMTPRecipientRefused]) -> NoReturn:
        said = "; ".join(f"{r.recipient}: {r.code} {_reply(r.message)}" for r in refused)
        said = fit(said, REPLY_MAX * 2)
        code = max(r.code for r in refused)
        if all(400 <= r.code < 500 for r in refused):
            self._unavailable(f"refused every recipient for now ({said})", code)
        raise SinkRejected(
            f"the SMTP server {self.server} refused every recipient ({said})",
            sink=self.name,
            status_code=code,
        )

    def _login_refused(self, code: int) -> NoReturn:
        # The reply text is left out on purpose: a server may echo the credentials it got.
        raise SinkDisabled(
            f"the SMTP server {self.server} refused the login (reply {code}): the username "
            f"{self.config.username!r} or its password is wrong, or the account may not send "
            "mail; fix username and password and restart ftwatch",
            sink=self.name,
            status_code=code,
        )

    def _not_supported(self, what: str) -> NoReturn:
        lowered = what.lower()
        if "starttls" in lowered:
            hint = 'it does not offer STARTTLS; use tls = "implicit" (port 465) if it speaks TLS'
        elif "auth" in lowered:
            hint = "it does not offer login (AUTH); remove username and password or fix the server"
        else:
            hint = _reply(what)
        raise SinkDisabled(
            f"the SMTP server {self.server} cannot be used as configured: {hint}",
            sink=self.name,
        )

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> NoReturn:
        why = _reply(exc.verify_message or exc.reason or "not trusted")
        raise SinkDisabled(
            f"the SMTP server {self.server} showed a certificate that is not trusted ({why}); "
            "set ca_file to the CA that signed it, or fix the server's certificate",
            sink=self.name,
        )
