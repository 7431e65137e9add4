"""Tell systemd how the daemon is doing: ``sd_notify`` over its documented socket protocol.

Under ``Type=notify`` systemd sets ``$NOTIFY_SOCKET`` (a unix datagram socket: a path, or an
abstract name written with a leading ``@``) and waits for ``READY=1`` before it counts the
service as started. With ``WatchdogSec=`` it also sets ``$WATCHDOG_USEC`` and kills a service
that does not send ``WATCHDOG=1`` that often; :meth:`Notifier.watchdog` sends it from the event
loop every half interval, so a loop that hangs stops the pings. ``STOPPING=1`` says a stop has
begun. No library: each message is one datagram of ``KEY=VALUE`` lines
(https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html). Outside systemd
(no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import anyio

__all__ = ["Notifier"]


class Notifier:
    """Sends ``sd_notify`` messages to ``$NOTIFY_SOCKET``; does nothing when it is not set."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` from ``environ``."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket's name starts with a NUL byte, written as "@" in the variable.
        self.address: str | None = (
            "\0" + address[1:] if address.startswith("@") else address
        ) or None
        #: Seconds between watchdog pings (half of WatchdogSec=), None when there is no watchdog.
        self.watchdog_interval: float | None = None
        pid = env.get("WATCHDOG_PID")
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
            mine = pid is None or int(pid) == os.getpid()
        except ValueError:
            usec, mine = 0, False
        if self.address and usec > 0 and mine:
            self.watchdog_interval = usec / 2_000_000

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; return whether it went out.

        A message systemd cannot take (no listener, a full queue) is dropped: the daemon's
        work never depends on it.
        """
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()
        # Not inherited by child processes: Python's sockets are close-on-exec (PEP 446).
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            try:
                sock.sendto(message, self.address)
            except OSError:
                return False
        return True

    async def watchdog(self) -> None:
        """Send ``WATCHDOG=1`` every :attr:`watchdog_interval` until cancelled (at once if none)."""
        if self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await anyio.sleep(self.watchdog_interval)
