"""A recording HTTP receiver for testing sinks: an ASGI app that keeps every request it gets.

Serve it on a real socket with :func:`watcher.serving.serve_asgi`, point a sink at the URL, and
assert on what arrived, byte for byte::

    receiver = RecordingReceiver()
    async with serve_asgi(receiver) as base_url:
        sink = WebhookSink(WebhookConfig(name="hooks", type="webhook", url=f"{base_url}/in"))
        async with sink:
            await sink.send(event)
        with anyio.fail_after(5):
            (request,) = await receiver.wait_for(1)
        assert request.body == event.to_json().encode()

How it answers can be changed at any time, also while requests are in flight:
:meth:`~RecordingReceiver.respond` (the answer from now on), :meth:`~RecordingReceiver.fail_first`
(the next few requests fail) and :meth:`~RecordingReceiver.hang` (never answer until the client
gives up). To test a refused connection, leave the ``serve_asgi`` block, or use a port nothing
listens on.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from .asgi import Receive, Scope, Send, lifespan, read_body, send_response, wait_for_disconnect
from .clock import Clock, SystemClock

__all__ = ["RecordedRequest", "RecordingReceiver"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the receiver got it."""

    #: The HTTP method, upper case (``"POST"``).
    method: str
    #: The URL path, without the query (``"/hooks/ftwatch"``).
    path: str
    #: The raw query string, without the ``?`` (``"token=abc"``), empty when there is none.
    query: str
    #: Header names lower-cased; a header sent more than once has its values joined by ``", "``.
    headers: dict[str, str]
    #: The body, exactly the bytes that arrived.
    body: bytes
    #: When the request had fully arrived, in unix seconds on the receiver's clock.
    received_at: float

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


class RecordingReceiver:
    """An ASGI app that records every HTTP request and answers as the test says.

    It answers ``200`` with an empty body until told otherwise. Every request is recorded in
    :attr:`requests` once its body has fully arrived, before it is answered, so a test can wait
    for a request that is made to hang.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        """Build a receiver; ``clock`` stamps :attr:`RecordedRequest.received_at`."""
        self._clock: Clock = clock if clock is not None else SystemClock()
        #: Every request received so far, in arrival order.
        self.requests: list[RecordedRequest] = []
        #: Every request answered so far with the status it got, in the order of the answers
        #: (a request that hangs, or whose client went away first, is not here).
        self.answered: list[tuple[RecordedRequest, int]] = []
        self._answer = _Answer(200)
        self._failures: deque[_Answer] = deque()
        self._hanging = False
        self._release = anyio.Event()
        self._waiters: list[tuple[int, anyio.Event]] = []
        self._answer_waiters: list[tuple[int, anyio.Event]] = []

    def respond(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer every request from now on with ``status``, ``body`` and ``headers``.

        Also cancels :meth:`hang` and :meth:`fail_first`: requests that are hanging get this
        answer at once.
        """
        self._answer = _Answer(status, body, dict(headers or {}))
        self._failures.clear()
        self._hanging = False
        self._release.set()

    def fail_first(
        self,
        n: int,
        status: int = 500,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (added to failures already queued).

        After them the receiver answers as before (:meth:`respond`, or hanging).
        """
        if n < 0:
            raise ValueError("fail_first needs a number of requests of 0 or more")
        self._failures.extend([_Answer(status, body, dict(headers or {}))] * n)

    def hang(self) -> None:
        """Leave requests unanswered from now on, until the client gives up or :meth:`respond`.

        A hanging request holds only its own connection: other requests, such as those due a
        :meth:`fail_first` failure, are answered meanwhile.
        """
        if not self._hanging:
            self._hanging = True
            self._release = anyio.Event()

    async def wait_for(self, n: int) -> list[RecordedRequest]:
        """Return the requests received so far once there are at least ``n`` of them.

        Waits without polling and without a time limit: wrap it in ``anyio.fail_after``.
        """
        await _wait_until(self._waiters, lambda: len(self.requests), n)
        return list(self.requests)

    async def wait_for_answers(self, n: int) -> list[tuple[RecordedRequest, int]]:
        """Return :attr:`answered` once at least ``n`` requests have been answered.

        Waits without polling and without a time limit: wrap it in ``anyio.fail_after``.
        """
        await _wait_until(self._answer_waiters, lambda: len(self.answered), n)
        return list(self.answered)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope: record HTTP requests and answer them."""
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        request = self._record(scope, body)

        if self._failures:
            answer = self._failures.popleft()
        elif self._hanging:
            if not await wait_for_disconnect(receive, self._release):
                return
            answer = self._answer
        else:
            answer = self._answer
        await _send_answer(send, answer)
        self.answered.append((request, answer.status))
        _wake_waiters(self._answer_waiters, len(self.answered))

    def _record(self, scope: Scope, body: bytes) -> RecordedRequest:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            received_at=self._clock.now(),
        )
        self.requests.append(request)
        _wake_waiters(self._waiters, len(self.requests))
        return request


async def _wait_until(
    waiters: list[tuple[int, anyio.Event]], count: Callable[[], int], n: int
) -> None:
    """Wait until ``count()`` reaches ``n``; whoever makes it grow calls :func:`_wake_waiters`."""
    if count() >= n:
        return
    event = anyio.Event()
    entry = (n, event)
    waiters.append(entry)
    try:
        await event.wait()
    finally:
        if entry in waiters:
            waiters.remove(entry)


def _wake_waiters(waiters: list[tuple[int, anyio.Event]], count: int) -> None:
    for wanted, event in waiters:
        if wanted <= count:
            event.set()


async def _send_answer(send: Send, answer: _Answer) -> None:
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()
    ]
    await send_response(send, answer.status, answer.body, headers)
