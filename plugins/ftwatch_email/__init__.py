"""ftwatch's email sink: each event as one email over SMTP, threaded per job.

Registered under the entry-point group ``ftwatch.sinks`` as ``email``::

    [[sinks]]
    name = "mail"
    type = "email"
    host = "smtp.example.com"
    username = "ftwatch@example.com"
    password = "${SMTP_PASSWORD}"
    from = "ftwatch <ftwatch@example.com>"
    to = ["ml-team@example.com"]

It imports only ``watcher``'s public modules, as a third-party plugin would.
"""

from __future__ import annotations

from ._config import DEFAULT_PORTS, EmailConfig, TlsMode
from ._message import build_email, message_id, thread_root
from ._sink import EmailSink

__all__ = [
    "DEFAULT_PORTS",
    "EmailConfig",
    "EmailSink",
    "TlsMode",
    "build_email",
    "message_id",
    "thread_root",
]
