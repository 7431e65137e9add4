"""Fault injection for the simulator: errors, rate limits, malformed bodies, hangs, slow answers.

Two kinds of fault. Probabilistic ones (``error_rate``, ``rate_limit_rate``, ``malformed_rate``)
draw from a seeded :class:`random.Random`, so a run with the same seed meets the same faults in
the same order. One-shot ones (:meth:`Faults.fail_next`, :meth:`Faults.malformed_next`,
:meth:`Faults.hang_next`) hit the next matching requests, always, which is what a test wants.
Broken pagination (``endless_pages``) tests that a poller cannot be trapped by a server that
always says ``has_more``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["EndlessMode", "Fault", "Faults", "MalformedKind"]

#: How a malformed answer is broken: JSON cut short, or an HTML page where JSON belongs.
MalformedKind = Literal["json", "html"]
#: What an endless list does past its real end: repeat its last page, answer empty pages, or
#: start again from the first page.
EndlessMode = Literal["repeat", "empty", "cycle"]

_MALFORMED_KINDS: Final = ("json", "html")
_ENDLESS_MODES: Final = ("repeat", "empty", "cycle")


@dataclass(frozen=True)
class Fault:
    """What the simulator does instead of (or to) one answer.

    ``action`` is ``"error"`` (answer ``status``, with retry hints when ``retry_after`` is set),
    ``"malformed"`` (answer ``status`` with a broken body of ``malformed`` kind) or ``"hang"``
    (never answer until the client goes away).
    """

    action: Literal["error", "malformed", "hang"]
    status: int = 500
    retry_after: float | None = None
    malformed: MalformedKind = "json"


@dataclass
class _OneShot:
    fault: Fault
    remaining: int
    path: str | None
    route: str | None

    def matches(self, path: str, route: str) -> bool:
        return (self.path is None or self.path in path) and (
            self.route is None or self.route == route
        )


class Faults:
    """The faults a :class:`~watcher.simulator.Simulator` injects; change them at any time.

    ``error_rate``, ``rate_limit_rate`` and ``malformed_rate`` are probabilities per request
    (their sum should stay at most 1). ``error_statuses`` are the statuses an error is drawn from;
    a 429 carries ``retry_after`` seconds in ``Retry-After`` and ``retry-after-ms``; ``latency``
    is real seconds of delay before every answer. ``scope``, when set, limits the probabilistic
    faults to request paths that contain it. ``endless_pages`` makes every list say ``has_more``.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        error_rate: float = 0.0,
        rate_limit_rate: float = 0.0,
        malformed_rate: float = 0.0,
        latency: float = 0.0,
        retry_after: float = 1.0,
        error_statuses: Sequence[int] = (500, 502, 503),
        scope: str | None = None,
        endless_pages: bool = False,
        endless_mode: EndlessMode = "repeat",
    ) -> None:
        """Set the probabilistic faults; one-shot faults are added with the ``*_next`` methods."""
        self.rng = random.Random(seed)
        self.error_rate = error_rate
        self.rate_limit_rate = rate_limit_rate
        self.malformed_rate = malformed_rate
        self.latency = latency
        self.retry_after = retry_after
        self.error_statuses = tuple(error_statuses)
        self.scope = scope
        self.endless_pages = endless_pages
        self.endless_mode: EndlessMode = endless_mode
        self._queue: list[_OneShot] = []

    def __repr__(self) -> str:
        """Show the rates and how many one-shot faults are waiting."""
        return (
            f"Faults(error_rate={self.error_rate}, rate_limit_rate={self.rate_limit_rate}, "
            f"malformed_rate={self.malformed_rate}, latency={self.latency}, "
            f"endless_pages={self.endless_pages}, pending={self.pending})"
        )

    # -- one-shot faults ---------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: float | None = None,
        path: str | None = None,
        route: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` (a 429 gets retry hints).

        ``path`` limits it to request paths containing that text, ``route`` to one route kind
        (``"list"``, ``"retrieve"``, ``"events"``, ...). A 429 without ``retry_after`` uses
        :attr:`retry_after`.
        """
        if status == 429 and retry_after is None:
            retry_after = self.retry_after
        self._add(Fault("error", status, retry_after), n, path, route)

    def malformed_next(
        self,
        n: int = 1,
        kind: MalformedKind = "json",
        *,
        status: int = 200,
        path: str | None = None,
        route: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` and a broken body.

        ``kind="json"`` cuts the real JSON answer in half; ``kind="html"`` sends an HTML error
        page, as a proxy in front of the API would.
        """
        if kind not in _MALFORMED_KINDS:
            raise ValueError(f"malformed kind must be one of {_MALFORMED_KINDS}, not {kind!r}")
        self._add(Fault("malformed", status, malformed=kind), n, path, route)

    def hang_next(self, n: int = 1, *, path: str | None = None, route: str | None = None) -> None:
        """Never answer the next ``n`` matching requests, until the client gives up.

        A hung request waits without blocking any other; the simulator's server releases it
        when it shuts down.
        """
        self._add(Fault("hang"), n, path, route)

    def _add(self, fault: Fault, n: int, path: str | None, route: str | None) -> None:
        if n < 1:
            raise ValueError("n must be at least 1")
        self._queue.append(_OneShot(fault, n, path, route))

    @property
    def pending(self) -> int:
        """How many one-shot faults are still to be served."""
        return sum(shot.remaining for shot in self._queue)

    def clear(self) -> None:
        """Drop every fault: one-shot ones, rates, latency and endless pages."""
        self._queue.clear()
        self.error_rate = self.rate_limit_rate = self.malformed_rate = self.latency = 0.0
        self.scope = None
        self.endless_pages = False

    # -- drawing -----------------------------------------------------------------------------

    def draw(self, path: str, route: str) -> Fault | None:
        """The fault for one request to ``path`` (of kind ``route``), or None to answer it.

        A waiting one-shot fault wins; otherwise one seeded draw decides between an error, a
        rate limit, a malformed body and a normal answer.
        """
        for shot in self._queue:
            if shot.matches(path, route):
                shot.remaining -= 1
                if shot.remaining == 0:
                    self._queue.remove(shot)
                return shot.fault
        total = self.error_rate + self.rate_limit_rate + self.malformed_rate
        if total <= 0 or (self.scope is not None and self.scope not in path):
            return None
        roll = self.rng.random()
        if roll < self.error_rate:
            return Fault("error", self.rng.choice(self.error_statuses or (500,)))
        roll -= self.error_rate
        if roll < self.rate_limit_rate:
            return Fault("error", 429, self.retry_after)
        roll -= self.rate_limit_rate
        if roll < self.malformed_rate:
            kind: MalformedKind = "json" if self.rng.random() < 0.5 else "html"
            return Fault("malformed", 200, malformed=kind)
        return None

    def check_endless_mode(self) -> EndlessMode:
        """The endless mode, checked (a typo would otherwise silently act as ``repeat``)."""
        if self.endless_mode not in _ENDLESS_MODES:
            raise ValueError(f"endless_mode must be one of {_ENDLESS_MODES}")
        return self.endless_mode
