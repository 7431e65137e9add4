"""Which endpoint a request is for, and the per-endpoint request counts tests assert on.

The simulator serves OpenAI's ``/v1/fine_tuning/jobs`` endpoints (the ``/v1`` prefix is
optional); :func:`route` names the endpoint of a method and path, and :class:`Stats` counts
requests by that name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final

__all__ = ["ROUTE_KINDS", "Route", "Stats", "route"]

#: The kinds of request :class:`Stats` counts; ``other`` is anything the router does not know.
ROUTE_KINDS: Final = (
    "list",
    "create",
    "retrieve",
    "events",
    "checkpoints",
    "cancel",
    "pause",
    "resume",
    "other",
)
_JOB_ACTIONS: Final = {"cancel", "pause", "resume"}
_JOB_LISTS: Final = {"events", "checkpoints"}


@dataclass(frozen=True)
class Route:
    """The endpoint a request is for: its kind (:data:`ROUTE_KINDS`) and the job it names."""

    kind: str
    job_id: str | None = None
    #: False when the path is known but the method is not the one it takes.
    allowed: bool = True


def route(method: str, path: str) -> Route:
    """Name the endpoint ``method path`` is for (``other`` when there is none)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["v1"]:
        parts = parts[1:]
    if parts[:2] != ["fine_tuning", "jobs"]:
        return Route("other")
    rest = parts[2:]
    if not rest:
        if method == "GET":
            return Route("list")
        return Route("create", allowed=method == "POST")
    job_id = rest[0]
    if len(rest) == 1:
        return Route("retrieve", job_id, allowed=method == "GET")
    if len(rest) == 2 and rest[1] in _JOB_LISTS:
        return Route(rest[1], job_id, allowed=method == "GET")
    if len(rest) == 2 and rest[1] in _JOB_ACTIONS:
        return Route(rest[1], job_id, allowed=method == "POST")
    return Route("other")


class Stats:
    """How many requests the simulator received, per route kind (:data:`ROUTE_KINDS`)."""

    def __init__(self) -> None:
        """Start with every count at zero."""
        self.counts: Counter[str] = Counter()
        #: Requests that were answered with an injected fault (or hung).
        self.faults = 0

    def __getitem__(self, kind: str) -> int:
        """The number of requests of ``kind`` (``"list"``, ``"retrieve"``, ``"events"``...)."""
        return self.counts[kind]

    def __repr__(self) -> str:
        """Show the non-zero counts and the total."""
        return f"Stats({dict(self.counts)}, total={self.total}, faults={self.faults})"

    @property
    def total(self) -> int:
        """Every request received, whatever its kind."""
        return sum(self.counts.values())

    def record(self, kind: str) -> None:
        """Count one request of ``kind``."""
        self.counts[kind] += 1

    def as_dict(self) -> dict[str, int]:
        """The counts of every kind, with ``total`` and ``faults``."""
        counts = {kind: self.counts[kind] for kind in ROUTE_KINDS}
        return {**counts, "total": self.total, "faults": self.faults}

    def reset(self) -> None:
        """Set every count back to zero."""
        self.counts.clear()
        self.faults = 0
