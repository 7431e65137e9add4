"""In-process subscribers: ``async for event in watcher.events(...)`` and ``@watcher.on(...)``.

Each subscription has its own bounded buffer, filled without ever waiting, so a slow subscriber
never blocks polling or the sinks. When a buffer is full (``buffer`` events waiting, 1000 by
default), the overflow policy applies:

- ``"drop"`` (the default): the new event is dropped for that subscriber only, counted in
  :attr:`Subscription.dropped`, and a ``subscriber_overflow`` warning is logged. Iteration goes
  on with the events that were kept. Every event is still in the journal and reaches every sink.
- ``"error"``: the subscription is closed; once the buffered events are read, iteration raises
  :class:`SubscriberOverflow`, so a consumer that must see everything knows it did not.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator, Iterable
from typing import Literal

import anyio
import structlog
from anyio.abc import AsyncResource
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import WatcherError
from .events import BaseEvent, event_type_name

__all__ = ["Overflow", "SubscriberOverflow", "Subscription", "type_patterns"]

log = structlog.get_logger(__name__)

#: What a full subscriber buffer does: drop the new event, or end the subscription with an error.
Overflow = Literal["drop", "error"]


class SubscriberOverflow(WatcherError):
    """A subscription with ``overflow="error"`` fell behind by more than its buffer."""


def type_patterns(types: Iterable[type[BaseEvent] | str]) -> tuple[str, ...]:
    """Wire-name patterns for event classes or names (globs allowed); empty means every event."""
    return tuple(t if isinstance(t, str) else event_type_name(t) for t in types)


class Subscription(AsyncResource):
    """An async iterator of events, with its own bounded buffer; also an async context manager.

    Leaving its ``async with`` block (or :meth:`aclose`) ends it and drops what it buffered.
    """

    def __init__(
        self,
        patterns: tuple[str, ...],
        *,
        buffer: int = 1000,
        overflow: Overflow = "drop",
    ) -> None:
        if buffer < 1:
            raise ValueError("buffer must be at least 1")
        self.patterns = patterns
        self.overflow = overflow
        #: How many events were dropped because the buffer was full.
        self.dropped = 0
        self._send: MemoryObjectSendStream[BaseEvent]
        self._receive: MemoryObjectReceiveStream[BaseEvent]
        self._send, self._receive = anyio.create_memory_object_stream[BaseEvent](buffer)
        self._overflowed = False
        self._registry: list[Subscription] | None = None

    def wants(self, event: BaseEvent) -> bool:
        """Tell whether this subscription asked for ``event``'s type."""
        return not self.patterns or any(fnmatch.fnmatchcase(event.type, p) for p in self.patterns)

    def offer(self, event: BaseEvent) -> None:
        """Queue ``event`` without waiting; applies the overflow policy when the buffer is full."""
        if self._overflowed or not self.wants(event):
            return
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            self.dropped += 1
            if self.overflow == "error":
                self._overflowed = True
                self._send.close()
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning(
                    "subscriber_overflow",
                    dropped=self.dropped,
                    policy=self.overflow,
                    event_id=event.id,
                )
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def close(self) -> None:
        """Stop receiving; iteration ends once the buffered events are read."""
        self._send.close()
        if self._registry is not None and self in self._registry:
            self._registry.remove(self)

    def __aiter__(self) -> AsyncIterator[BaseEvent]:
        return self

    async def __anext__(self) -> BaseEvent:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._overflowed:
                raise SubscriberOverflow(
                    f"the subscriber fell more than its buffer behind and {self.dropped} "
                    "event(s) were dropped; read faster or pass a larger buffer"
                ) from None
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Stop receiving and drop the buffered events: iteration ends at once."""
        self.close()
        self._receive.close()
