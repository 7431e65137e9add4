"""The async client for the ``/v1/fine_tuning/jobs`` API: list, retrieve, events, checkpoints.

It authenticates with a bearer key, retries what is worth retrying (connection failures,
timeouts, 408, 409, 429, 5xx) with capped exponential backoff and full jitter, honours the
server's ``retry-after-ms`` and ``Retry-After`` hints, and turns every failure into one of the
typed errors of :mod:`watcher.errors`. A malformed item in a list is logged and skipped; a
malformed body raises :class:`~watcher.errors.MalformedResponse`; nothing crashes.

Every wait follows :mod:`watcher.retry`, the one policy of the project (a server's hint is a
floor on the jittered backoff, here bounded by ``max_backoff``); an injected ``sleep`` and
``rng`` let a test see the waits without sleeping.

Secrets: the key lives in a :class:`pydantic.SecretStr` inside an auth object that adds the
header to each request as it is sent, so it is in no ``repr``, no log line, no error and no
local variable a traceback renderer might print. Logs and errors name the source and the
operation, never a URL.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import anyio
import structlog
from anyio.abc import AsyncResource
from pydantic import BaseModel, SecretStr, ValidationError

from .errors import (
    APIError,
    AuthenticationError,
    InvalidJobId,
    MalformedResponse,
    NotFoundError,
    RateLimited,
    ServerError,
)
from .http import (
    Answer,
    AsyncBaseTransport,
    AsyncClient,
    BearerAuth,
    DeadlineExceeded,
    ResponseTooLarge,
    Timeout,
    TimeoutException,
    api_transport,
    fetch,
    httpx,
)
from .models import Checkpoint, FineTuningJob, JobEventRecord
from .payload import (
    PayloadError,
    RawPage,
    api_error_message,
    is_plain_id,
    parse_document,
    parse_page,
    validation_reason,
)
from .retry import parse_retry_after, retry_delay
from .version import __version__

# parse_retry_after lives in watcher.retry; it is re-exported here for existing imports.
__all__ = ["APIClient", "Page", "parse_retry_after"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: Statuses worth another attempt: the request may succeed if sent again later.
RETRYABLE_STATUSES: Final = frozenset({408, 409, 429})
#: The first backoff ceiling in seconds; it doubles per attempt up to ``max_backoff``.
INITIAL_BACKOFF: Final = 0.5
#: The most bytes of one answer read, once decompressed (``max_response_bytes``).
DEFAULT_MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024
#: The most bytes of one job or list item (``max_job_bytes``).
DEFAULT_MAX_JOB_BYTES: Final = 1024 * 1024

# Transport failures where sending again can help. Others (an unsupported scheme, a request
# httpx itself refuses to build, a proxy misconfiguration) would fail the same way every time.
_RETRYABLE_TRANSPORT_ERRORS: Final = (
    TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


USER_AGENT: Final = f"ftwatch/{__version__}"


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


@dataclass(frozen=True)
class _Failure:
    """A retryable outcome of one attempt: an HTTP status, or a transport error's name."""

    status_code: int | None
    reason: str
    retry_after: float | None = None


class APIClient(AsyncResource):
    """An async client for one source speaking OpenAI's ``/fine_tuning/jobs`` protocol.

    Give it an ``http`` client to share a connection pool (it is then not closed here), or a
    ``transport`` to drive it from tests or from the simulator. ``timeout`` bounds every
    request as a whole (connect, send and the whole answer), either way: one that takes
    longer is retried like any transient failure. An answer's body is read decompressed up to
    ``max_response_bytes`` (32 MiB by default), and one job or list item may be at most
    ``max_job_bytes`` (1 MiB): a larger answer is a :class:`~watcher.errors.MalformedResponse`,
    a larger item is skipped like any malformed one. ``rng`` is the random source of the
    backoff's jitter. Use it as an async context manager, or call :meth:`aclose`.
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
        http: AsyncClient | None = None,
        transport: AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Configure the client; nothing is sent until the first call."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if max_backoff < 0:
            raise ValueError("max_backoff must not be negative")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_response_bytes < 1 or max_job_bytes < 1:
            raise ValueError("max_response_bytes and max_job_bytes must be positive")
        if http is not None and transport is not None:
            raise ValueError("pass either http or transport, not both")
        self.source = source
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        #: The most bytes of one answer read, decompressed; a larger one is malformed.
        self.max_response_bytes = max_response_bytes
        #: The most bytes of one job (or list item); a larger one is skipped as malformed.
        self.max_job_bytes = max_job_bytes
        #: HTTP requests actually sent, retries included.
        self.requests_sent = 0
        self._base_url = base_url.rstrip("/")
        key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._auth = BearerAuth(key)
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if organization:
            self._headers["OpenAI-Organization"] = organization
        if project:
            self._headers["OpenAI-Project"] = project
        self._timeout = Timeout(timeout)
        # httpx's timeout is per connect, read or write; this bounds a whole request.
        self._deadline = timeout
        self._sleep = sleep if sleep is not None else anyio.sleep
        self._rng = rng if rng is not None else random.Random()
        self._owns_http = http is None
        if http is None and transport is None:
            # httpx on aiohttp's HTTP/1.1 stack, as the sinks use: the same requests, answers
            # and errors at less CPU per request (bench/polling.py prints both).
            transport = api_transport()
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
        """List jobs as the API sent them (decoded JSON, not validated), newest first.

        For a caller that validates only the objects that changed since it last read them (the
        poller). Items that cannot be read at all (too large, too deep, an id that is not a
        plain token) are logged and counted in ``skipped``, as :meth:`list_jobs` does.
        """
        answer = await self._request(
            "GET", "/fine_tuning/jobs", "list_jobs", params=self._page_params(limit, after)
        )
        page = self._raw_page(answer, "list_jobs")
        items: list[Any] = []
        for index, raw in enumerate(page.items):
            reason = raw.error or (None if is_plain_id(raw.id or "") else "id: not a plain token")
            if reason is None:
                items.append(raw.value)
            else:
                self._skipped("list_jobs", index, reason)
        skipped = len(page.items) - len(items)
        return Page(items, page.has_more, self._last_id(page), skipped)

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

    def _job_path(self, job_id: str) -> str:
        if not is_plain_id(job_id):
            # Refused before any URL is built: "." or ".." would address another endpoint.
            raise InvalidJobId(
                f"{job_id[:80]!r} is not a job id for source {self.source!r}; a job id is "
                "letters, digits, '_', '-', '.' and ':' and does not start with '.'.",
                source=self.source,
            )
        return f"/fine_tuning/jobs/{quote(job_id, safe='')}"

    @staticmethod
    def _page_params(limit: int, after: str | None) -> dict[str, str | int]:
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return params

    def _backoff(self, attempt: int, hint: float | None) -> float:
        """The wait before the next attempt, by the one rule of :mod:`watcher.retry`."""
        # The hint is bounded by max_backoff: this wait holds up the source's poll cycle.
        return retry_delay(
            attempt,
            initial=INITIAL_BACKOFF,
            maximum=self.max_backoff,
            rng=self._rng,
            retry_after=hint,
            retry_after_limit=self.max_backoff,
        )

    async def _request(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: dict[str, str | int] | None = None,
    ) -> Answer:
        """Send one call with retries; return its 2xx answer, body read and size-checked."""
        url = self._base_url + path
        attempt = 0
        while True:
            attempt += 1
            self.requests_sent += 1
            try:
                response = await fetch(
                    self._http,
                    method,
                    url,
                    deadline=self._deadline,
                    max_bytes=self.max_response_bytes,
                    params=params,
                    headers=self._headers,
                    auth=self._auth,
                    timeout=self._timeout,
                )
            except DeadlineExceeded as exc:
                failure = _Failure(None, str(exc))
            except _RETRYABLE_TRANSPORT_ERRORS as exc:
                failure = _Failure(None, type(exc).__name__)
            except ResponseTooLarge:
                what = f"with a body larger than max_response_bytes ({self.max_response_bytes})"
                raise self._malformed(operation, what, None) from None
            except httpx.DecodingError:
                what = "with a body that cannot be decompressed"
                raise self._malformed(operation, what, None) from None
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
                    return response
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

    def _check(self, response: Answer, operation: str) -> _Failure | None:
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
        message = api_error_message(response.content)
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

    def _malformed(self, operation: str, what: str, status: int | None) -> MalformedResponse:
        return MalformedResponse(
            f"{operation} for source {self.source!r} answered {what}.",
            source=self.source,
            status_code=status,
        )

    def _not_html(self, response: Answer, operation: str) -> None:
        content_type = response.headers.get("content-type", "").lower()
        text_start = response.content.lstrip()[:1]
        if "html" in content_type or text_start == b"<":
            what = "with an HTML page instead of JSON"
            raise self._malformed(operation, what, response.status_code)

    def _job(self, response: Answer, operation: str) -> FineTuningJob:
        self._not_html(response, operation)
        try:
            body = parse_document(response.content, max_bytes=self.max_job_bytes)
        except PayloadError as exc:
            raise self._malformed(operation, f"with {exc}", response.status_code) from None
        try:
            job = FineTuningJob.model_validate(body)
        except ValidationError:
            what = "with no job that has a valid id and status"
            raise self._malformed(operation, what, response.status_code) from None
        if not is_plain_id(job.id):
            what = "with a job whose id is not a plain token"
            raise self._malformed(operation, what, response.status_code)
        return job

    def _raw_page(self, response: Answer, operation: str) -> RawPage:
        self._not_html(response, operation)
        try:
            return parse_page(response.content, max_item_bytes=self.max_job_bytes)
        except PayloadError as exc:
            raise self._malformed(operation, f"with {exc}", response.status_code) from None

    def _skipped(self, operation: str, index: int, reason: str) -> None:
        log.warning(
            "api_item_skipped", source=self.source, operation=operation, index=index, reason=reason
        )

    def _page(self, response: Answer, model: type[M], operation: str) -> Page[M]:
        page = self._raw_page(response, operation)
        items: list[M] = []
        skipped = 0
        for index, raw in enumerate(page.items):
            reason = raw.error
            if reason is None:
                try:
                    item = model.model_validate(raw.value)
                except ValidationError as exc:
                    reason = validation_reason(exc)
                else:
                    # An id becomes part of a URL path later: it must be a plain token.
                    if model is FineTuningJob and not is_plain_id(raw.id or ""):
                        reason = "id: not a plain token"
                    else:
                        items.append(item)
            if reason is not None:
                skipped += 1
                self._skipped(operation, index, reason)
        return Page(
            items=items,
            has_more=page.has_more,
            last_id=self._last_id(page),
            skipped=skipped,
        )

    @staticmethod
    def _last_id(page: RawPage) -> str | None:
        # The cursor is the last raw item's id, even if that item was skipped; an item with no
        # usable id cannot be a cursor, so the one before it (or the body's own last_id) is.
        for item in reversed(page.items):
            if item.id:
                return item.id
        return page.last_id
