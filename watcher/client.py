"""The async client for the ``/v1/fine_tuning/jobs`` API: list, retrieve, events, checkpoints.

It authenticates with a bearer key, retries what is worth retrying (connection failures,
timeouts, 408, 409, 429, 5xx) with capped exponential backoff and full jitter, honours the
server's ``retry-after-ms`` and ``Retry-After`` hints, and turns every failure into one of the
typed errors of :mod:`watcher.errors`. A malformed item in a list is logged and skipped; a
malformed body raises :class:`~watcher.errors.MalformedResponse`; nothing crashes.

The retry loop is written here rather than with ``stamina`` (STYLE.md suggests it): stamina
sleeps through its own ``asyncio.sleep``/``trio.sleep`` and its testing mode sets every wait to
zero for the whole process, so a test could neither avoid real sleeps nor see the waits that
were chosen (that ``Retry-After`` was honoured, that backoff grows and is capped). Its jitter is
also additive rather than full. Twenty lines of loop with an injected ``sleep`` do both.

Secrets: the key lives in a :class:`pydantic.SecretStr` inside an auth object that adds the
header to each request as it is sent, so it is in no ``repr``, no log line, no error and no
local variable a traceback renderer might print. Logs and errors name the source and the
operation, never a URL.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, Generic, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import anyio
import structlog
from anyio.abc import AsyncResource
from pydantic import BaseModel, SecretStr, ValidationError

from .errors import (
    APIError,
    AuthenticationError,
    MalformedResponse,
    NotFoundError,
    RateLimited,
    ServerError,
)
from .http import (
    AsyncBaseTransport,
    AsyncClient,
    Request,
    Response,
    Timeout,
    TimeoutException,
    httpx,
)
from .models import Checkpoint, FineTuningJob, JobEventRecord

__all__ = ["APIClient", "Page", "parse_retry_after"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: Statuses worth another attempt: the request may succeed if sent again later.
RETRYABLE_STATUSES: Final = frozenset({408, 409, 429})
#: The first backoff ceiling in seconds; it doubles per attempt up to ``max_backoff``.
INITIAL_BACKOFF: Final = 0.5
#: The longest an error message taken from a response body may be.
_MAX_MESSAGE: Final = 300

# Transport failures where sending again can help. Others (an unsupported scheme, a request
# httpx itself refuses to build, a proxy misconfiguration) would fail the same way every time.
_RETRYABLE_TRANSPORT_ERRORS: Final = (
    TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


def _package_version() -> str:
    try:
        return version("ftwatch")
    except PackageNotFoundError:
        return "0"


USER_AGENT: Final = f"ftwatch/{_package_version()}"


def _jitter() -> float:
    # One seam for the random draw, so a test can pin it and see the backoff ceiling itself.
    return random.random()


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list endpoint: its valid items and where the next page starts."""

    #: The items that parsed; malformed ones are left out and counted in ``skipped``.
    items: list[T]
    #: True when the API has more items after this page.
    has_more: bool
    #: The id of the last raw item (even a malformed one): pass it as ``after`` for the next page.
    last_id: str | None
    #: How many items were dropped because they were malformed (each one was logged).
    skipped: int


class _BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <key>`` to each request as it is sent, and nothing else."""

    def __init__(self, key: SecretStr | None) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "_BearerAuth(key=***)" if self._key is not None else "_BearerAuth(key=None)"

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        """Set the header on ``request`` and send it once."""
        if self._key is not None:
            request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def redact(self, text: str) -> str:
        """Replace the key wherever ``text`` holds it (a server could echo it back)."""
        if self._key is not None and self._key.get_secret_value():
            text = text.replace(self._key.get_secret_value(), "***")
        return text


@dataclass(frozen=True)
class _Failure:
    """A retryable outcome of one attempt: an HTTP status, or a transport error's name."""

    status_code: int | None
    reason: str
    retry_after: float | None = None


def _finite_non_negative(value: float) -> float | None:
    return value if math.isfinite(value) and value >= 0 else None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Read the server's wait hint in seconds, or None when it gave none that makes sense.

    ``retry-after-ms`` (OpenAI's, in milliseconds) wins over ``Retry-After``, which is either
    seconds or an HTTP date; a date in the past means "now" (0).
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            hint = _finite_non_negative(float(raw_ms) / 1000.0)
        except ValueError:
            hint = None
        if hint is not None:
            return hint
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return _finite_non_negative(float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "..."


def _api_message(response: Response) -> str | None:
    """OpenAI's own error message from an error body, or None when there is none."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    if not isinstance(error, str) or not error.strip():
        message = body.get("message")
        error = message if isinstance(message, str) else None
    return _one_line(error) if error and error.strip() else None


def _reason(exc: ValidationError) -> str:
    # Field locations and error kinds only: pydantic's own message quotes the input.
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in err["loc"]) or "item"
        parts.append(f"{where}: {err['type']}")
    return "; ".join(parts) or "invalid"


class APIClient(AsyncResource):
    """An async client for one source speaking OpenAI's ``/fine_tuning/jobs`` protocol.

    Give it an ``http`` client to share a connection pool (it is then not closed here), or a
    ``transport`` to drive it from tests or from the simulator. ``timeout`` applies to every
    request either way. Use it as an async context manager, or call :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | SecretStr | None = None,
        organization: str | None = None,
        project: str | None = None,
        source: str = "default",
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_backoff: float = 60.0,
        http: AsyncClient | None = None,
        transport: AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """Configure the client; nothing is sent until the first call."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if max_backoff < 0:
            raise ValueError("max_backoff must not be negative")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if http is not None and transport is not None:
            raise ValueError("pass either http or transport, not both")
        self.source = source
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        #: HTTP requests actually sent, retries included.
        self.requests_sent = 0
        self._base_url = base_url.rstrip("/")
        key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._auth = _BearerAuth(key)
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if organization:
            self._headers["OpenAI-Organization"] = organization
        if project:
            self._headers["OpenAI-Project"] = project
        self._timeout = Timeout(timeout)
        self._sleep = sleep if sleep is not None else anyio.sleep
        self._owns_http = http is None
        self._http = http if http is not None else AsyncClient(transport=transport)

    def __repr__(self) -> str:
        """Name the source and the host only: a URL may carry credentials, the key never shows."""
        host = urlsplit(self._base_url).hostname or "?"
        return f"APIClient(source={self.source!r}, host={host!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it; a shared one is left open."""
        if self._owns_http:
            await self._http.aclose()

    # -- endpoints ---------------------------------------------------------------------------

    async def list_jobs(self, *, limit: int = 100, after: str | None = None) -> Page[FineTuningJob]:
        """List jobs, newest first; pass ``Page.last_id`` as ``after`` to read the next page."""
        answer = await self._request(
            "GET", "/fine_tuning/jobs", "list_jobs", params=self._page_params(limit, after)
        )
        return self._page(answer, FineTuningJob, "list_jobs")

    async def list_job_objects(self, *, limit: int = 100, after: str | None = None) -> Page[Any]:
        """List jobs as the API sent them (parsed JSON, not validated), newest first.

        For a caller that validates only the objects that changed since it last read them (the
        poller): every item is returned as it came, malformed or not, and ``skipped`` is 0.
        """
        answer = await self._request(
            "GET", "/fine_tuning/jobs", "list_jobs", params=self._page_params(limit, after)
        )
        body, status = answer
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise self._malformed("list_jobs", "with JSON that has no data list", status)
        raw: list[Any] = body["data"]
        return Page(
            items=raw,
            has_more=body.get("has_more") is True,
            last_id=self._last_id(raw, body),
            skipped=0,
        )

    async def retrieve_job(self, job_id: str) -> FineTuningJob:
        """Fetch one job by id."""
        answer = await self._request("GET", self._job_path(job_id), "retrieve_job")
        return self._job(answer, "retrieve_job")

    async def list_job_events(
        self, job_id: str, *, limit: int = 20, after: str | None = None
    ) -> Page[JobEventRecord]:
        """List a job's events (its log and metrics lines), newest first."""
        answer = await self._request(
            "GET",
            f"{self._job_path(job_id)}/events",
            "list_job_events",
            params=self._page_params(limit, after),
        )
        return self._page(answer, JobEventRecord, "list_job_events")

    async def list_checkpoints(
        self, job_id: str, *, limit: int = 10, after: str | None = None
    ) -> Page[Checkpoint]:
        """List a job's checkpoints, newest first."""
        answer = await self._request(
            "GET",
            f"{self._job_path(job_id)}/checkpoints",
            "list_checkpoints",
            params=self._page_params(limit, after),
        )
        return self._page(answer, Checkpoint, "list_checkpoints")

    async def cancel_job(self, job_id: str) -> FineTuningJob:
        """Ask the API to cancel a job and return the job as it then stands."""
        answer = await self._request("POST", f"{self._job_path(job_id)}/cancel", "cancel_job")
        return self._job(answer, "cancel_job")

    # -- requests and retries ----------------------------------------------------------------

    @staticmethod
    def _job_path(job_id: str) -> str:
        if not job_id:
            raise ValueError("job_id must not be empty")
        return f"/fine_tuning/jobs/{quote(job_id, safe='')}"

    @staticmethod
    def _page_params(limit: int, after: str | None) -> dict[str, str | int]:
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return params

    def _backoff(self, attempt: int, hint: float | None) -> float:
        """The wait before the next attempt: the server's hint, else full-jitter backoff."""
        if hint is not None:
            return min(hint, self.max_backoff)
        # The exponent is bounded so that a large max_attempts cannot overflow the float.
        ceiling = min(self.max_backoff, INITIAL_BACKOFF * 2.0 ** min(attempt - 1, 60))
        return ceiling * _jitter()

    async def _request(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: dict[str, str | int] | None = None,
    ) -> tuple[Any, int]:
        """Send one call with retries; return its parsed JSON body and its status."""
        url = self._base_url + path
        attempt = 0
        while True:
            attempt += 1
            self.requests_sent += 1
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    headers=self._headers,
                    auth=self._auth,
                    timeout=self._timeout,
                )
            except _RETRYABLE_TRANSPORT_ERRORS as exc:
                failure = _Failure(None, type(exc).__name__)
            except httpx.HTTPError as exc:
                # Chaining is cut on purpose: an httpx error's message may hold a URL.
                raise APIError(
                    f"could not send {operation} for source {self.source!r} "
                    f"({type(exc).__name__}).",
                    source=self.source,
                ) from None
            else:
                checked = self._check(response, operation)
                if checked is None:
                    return self._json(response, operation), response.status_code
                failure = checked
            if attempt >= self.max_attempts:
                self._give_up(failure, operation, attempt)
            delay = self._backoff(attempt, failure.retry_after)
            log.warning(
                "api_retry",
                source=self.source,
                operation=operation,
                reason=failure.reason,
                status_code=failure.status_code,
                attempt=attempt,
                max_attempts=self.max_attempts,
                delay=round(delay, 3),
            )
            await self._sleep(delay)

    def _check(self, response: Response, operation: str) -> _Failure | None:
        """None for a 2xx, a failure worth retrying, or raise for an answer that is final."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        if status in RETRYABLE_STATUSES or status >= 500:
            return _Failure(status, f"HTTP {status}", parse_retry_after(response.headers))
        if status in (401, 403):
            raise AuthenticationError(
                f"the API refused the key for source {self.source!r} (HTTP {status}); "
                f"check api_key for source {self.source!r}.",
                source=self.source,
                status_code=status,
            )
        if status == 404:
            raise NotFoundError(
                f"{operation} for source {self.source!r} found nothing (HTTP 404).",
                source=self.source,
                status_code=status,
            )
        message = _api_message(response)
        if message is not None:
            message = self._auth.redact(message)
        detail = f": {message.rstrip('.')}" if message else ""
        raise APIError(
            f"{operation} for source {self.source!r} failed with HTTP {status}{detail}.",
            source=self.source,
            status_code=status,
        )

    def _give_up(self, failure: _Failure, operation: str, attempts: int) -> NoReturn:
        if failure.status_code == 429:
            hint = ""
            if failure.retry_after is not None:
                hint = f"; it asked to wait {failure.retry_after:g}s"
            raise RateLimited(
                f"the API kept rate-limiting {operation} for source {self.source!r} "
                f"(HTTP 429) after {attempts} attempts{hint}.",
                source=self.source,
                status_code=429,
                retry_after=failure.retry_after,
            )
        raise ServerError(
            f"{operation} for source {self.source!r} failed after {attempts} attempts "
            f"({failure.reason}).",
            source=self.source,
            status_code=failure.status_code,
        )

    # -- parsing -----------------------------------------------------------------------------

    def _malformed(self, operation: str, what: str, status: int) -> MalformedResponse:
        return MalformedResponse(
            f"{operation} for source {self.source!r} answered {what}.",
            source=self.source,
            status_code=status,
        )

    def _json(self, response: Response, operation: str) -> Any:
        content_type = response.headers.get("content-type", "").lower()
        text_start = response.content.lstrip()[:1]
        status = response.status_code
        if "html" in content_type or text_start == b"<":
            raise self._malformed(operation, "with an HTML page instead of JSON", status)
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise self._malformed(operation, "with a body that is not JSON", status) from None

    def _job(self, answer: tuple[Any, int], operation: str) -> FineTuningJob:
        body, status = answer
        try:
            return FineTuningJob.model_validate(body)
        except ValidationError:
            what = "with no job that has a valid id and status"
            raise self._malformed(operation, what, status) from None

    def _page(self, answer: tuple[Any, int], model: type[M], operation: str) -> Page[M]:
        body, status = answer
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise self._malformed(operation, "with JSON that has no data list", status)
        raw: list[Any] = body["data"]
        items: list[M] = []
        skipped = 0
        for index, item in enumerate(raw):
            try:
                items.append(model.model_validate(item))
            except ValidationError as exc:
                skipped += 1
                log.warning(
                    "api_item_skipped",
                    source=self.source,
                    operation=operation,
                    index=index,
                    reason=_reason(exc),
                )
        return Page(
            items=items,
            has_more=body.get("has_more") is True,
            last_id=self._last_id(raw, body),
            skipped=skipped,
        )

    @staticmethod
    def _last_id(raw: list[Any], body: dict[str, Any]) -> str | None:
        # The cursor is the last raw item's id, even if that item was skipped; an item with no
        # usable id cannot be a cursor, so the one before it (or the body's own last_id) is.
        for item in reversed(raw):
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                return str(item["id"])
        last = body.get("last_id")
        return last if isinstance(last, str) and last else None
