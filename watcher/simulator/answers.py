"""What the simulator answers: OpenAI's JSON bodies, its error bodies, and the faults' answers.

A handler returns an :class:`Answer` or raises :class:`BadRequest` from deep inside; a fault
drawn by :class:`~watcher.simulator.faults.Faults` replaces or spoils the answer
(:func:`fault_answer`, :func:`malform`), as a rate limiter, a gateway or a broken proxy would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .faults import Fault

__all__ = ["Answer", "BadRequest", "error", "fault_answer", "json_answer", "malform"]

_HTML_PAGE: Final = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Answer:
    """One HTTP answer: status, body, extra headers and content type."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = b"application/json"


class BadRequest(Exception):
    """An answer other than 200, raised from deep in a handler."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        """Carry OpenAI's error body for ``status`` and ``message``."""
        super().__init__(message)
        self.answer = error(status, message, kind=kind, param=param, code=code)


def json_answer(status: int, payload: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> Answer:
    """``payload`` as a JSON answer."""
    return Answer(status, json.dumps(payload).encode(), list(headers))


def error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> Answer:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json_answer(status, body, headers)


def fault_answer(fault: Fault) -> Answer:
    """The answer an injected error fault gives, with ``Retry-After`` when it sets one."""
    headers: list[tuple[bytes, bytes]] = []
    if fault.retry_after is not None:
        seconds = max(0.0, fault.retry_after)
        # Retry-After takes whole seconds; OpenAI's retry-after-ms carries the exact wait.
        headers.append((b"retry-after", str(int(-(-seconds // 1))).encode()))
        headers.append((b"retry-after-ms", str(int(seconds * 1000)).encode()))
    status = fault.status
    if status == 429:
        return error(
            429,
            "Rate limit reached for requests. Please try again later.",
            kind="requests",
            code="rate_limit_exceeded",
            headers=headers,
        )
    if status in (502, 504):
        # Gateways in front of the API answer with their own HTML page, not OpenAI's JSON.
        return _html(status, headers)
    if status == 503:
        message = "The server is overloaded or not ready yet."
        return error(503, message, kind="server_error", headers=headers)
    if status >= 500:
        message = "The server had an error while processing your request. Sorry about that!"
        return error(status, message, kind="server_error", headers=headers)
    return error(status, f"Injected error (HTTP {status}).", headers=headers)


def malform(answer: Answer, fault: Fault) -> Answer:
    """Spoil ``answer`` as ``fault`` says: an HTML page, or half of the JSON."""
    if fault.malformed == "html":
        return _html(fault.status)
    # Half of a JSON object can never parse: its braces do not balance.
    cut = answer.body[: max(1, len(answer.body) // 2)]
    return Answer(fault.status, cut, [], answer.content_type)


def _html(status: int, headers: Sequence[tuple[bytes, bytes]] = ()) -> Answer:
    page = _HTML_PAGE.format(status=status, reason=_REASONS.get(status, "Error"))
    return Answer(status, page.encode(), list(headers), b"text/html; charset=UTF-8")
