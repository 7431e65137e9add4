"""The simulator: a store of simulated jobs, the controls tests use, and the ASGI app over them.

The app is a hand-written router for OpenAI's ``/v1/fine_tuning/jobs`` endpoints (the ``/v1``
prefix is optional). Jobs live in a list sorted by ``(created_at, id)``, so a page of the
newest-first listing is a slice found by bisection, and only the jobs on that page have their
status computed. Every answer goes through :class:`~watcher.simulator.faults.Faults` first.
"""

from __future__ import annotations

import bisect
import hmac
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl

import anyio

from ..clock import Clock, SystemClock
from ..serving import serve_asgi
from .faults import EndlessMode, Fault, Faults
from .jobs import (
    DEFAULT_MODEL,
    RUN_FAILURES,
    TERMINAL_STATUSES,
    InvalidJobState,
    JobNotFound,
    Profile,
    SimJob,
    Step,
    StepLike,
    coerce_script,
    planned_train_seconds,
    random_script,
    random_token,
    resolve_model,
    stable_token,
)

__all__ = ["ROUTE_KINDS", "Simulator", "Stats", "serve_simulator"]

T = TypeVar("T")

#: ASGI's types, spelled out so the app needs no framework.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

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
#: The most items one page may hold.
MAX_LIMIT: Final = 100
_JOB_ACTIONS: Final = {"cancel", "pause", "resume"}
_JOB_LISTS: Final = {"events", "checkpoints"}
_AUTO_HYPERPARAMETERS: Final = {
    "batch_size": "auto",
    "learning_rate_multiplier": "auto",
    "n_epochs": "auto",
}
_ACTIVE_SCRIPTS: Final[Mapping[str, tuple[Step, ...]]] = {
    "validating_files": (Step(0, "validating_files"),),
    "queued": (Step(0, "validating_files"), Step(30, "queued")),
    "running": (Step(0, "validating_files"), Step(30, "queued"), Step(60, "running")),
}
# An active job made in bulk trains for a day, so it looks busy for the whole of a benchmark.
_BULK_ACTIVE_TRAIN_SECONDS: Final = 86_400.0
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


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = b"application/json"


class _BadRequest(Exception):
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
        super().__init__(message)
        self.answer = _error(status, message, kind=kind, param=param, code=code)


@dataclass(frozen=True)
class _Route:
    kind: str
    job_id: str | None = None
    #: False when the path is known but the method is not the one it takes.
    allowed: bool = True


def _json(status: int, payload: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), list(headers))


def _error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> _Answer:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return _json(status, body, headers)


def _route(method: str, path: str) -> _Route:
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["v1"]:
        parts = parts[1:]
    if parts[:2] != ["fine_tuning", "jobs"]:
        return _Route("other")
    rest = parts[2:]
    if not rest:
        if method == "GET":
            return _Route("list")
        return _Route("create", allowed=method == "POST")
    job_id = rest[0]
    if len(rest) == 1:
        return _Route("retrieve", job_id, allowed=method == "GET")
    if len(rest) == 2 and rest[1] in _JOB_LISTS:
        return _Route(rest[1], job_id, allowed=method == "GET")
    if len(rest) == 2 and rest[1] in _JOB_ACTIONS:
        return _Route(rest[1], job_id, allowed=method == "POST")
    return _Route("other")


def _paginate(
    total: int,
    start: int,
    limit: int,
    get: Callable[[int, int], list[T]],
    endless: EndlessMode | None,
) -> tuple[list[T], bool]:
    """The page of ``limit`` items from ``start`` (``get(a, b)`` reads items a..b-1).

    With ``endless`` set the answer always says ``has_more``, and past the real end it repeats
    the last page, sends nothing, or starts over, as a broken server might.
    """
    page = get(start, min(total, start + limit)) if start < total else []
    has_more = start + limit < total
    if endless is not None:
        has_more = True
        if not page and total:
            if endless == "repeat":
                page = get(max(0, total - limit), total)
            elif endless == "cycle":
                page = get(0, min(total, limit))
    return page, has_more


def _limit(query: Mapping[str, str], default: int) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise _BadRequest(
            400,
            f"Invalid 'limit': expected an integer between 1 and {MAX_LIMIT}.",
            param="limit",
            code="invalid_value",
        )
    return limit


class Simulator:
    """A fake OpenAI fine-tuning API: jobs that progress on ``clock``, served as an ASGI app.

    ``seed`` fixes every random choice: job ids, progressions, and the probabilistic faults of
    the default :class:`Faults`. With ``api_key`` set, requests must carry
    ``Authorization: Bearer <api_key>``. The simulator itself is the ASGI callable (also as
    :attr:`app`); nothing runs in the background, so a :class:`~watcher.clock.ManualClock`
    moves every job just by being advanced.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        api_key: str | None = None,
        faults: Faults | None = None,
        organization_id: str = "org-ftwatchsimulator",
        failure_rate: float = 0.1,
    ) -> None:
        """Make an empty simulator; add jobs with :meth:`create_job` or :meth:`add_jobs`."""
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.seed = seed
        self.faults = faults if faults is not None else Faults(seed=seed)
        self.stats = Stats()
        self.organization_id = organization_id
        #: The probability that a job created with no script (or over HTTP) fails.
        self.failure_rate = failure_rate
        self._api_key = api_key
        self._rng = random.Random(seed)
        self._jobs: dict[str, SimJob] = {}
        # Ascending (created_at, id): the newest-first listing reads it backwards.
        self._order: list[tuple[float, str]] = []
        self._hangs: set[anyio.CancelScope] = set()
        self._requests = 0

    def __repr__(self) -> str:
        """Name the job count and the seed; never the API key."""
        auth = "on" if self._api_key is not None else "off"
        return f"Simulator(jobs={len(self._jobs)}, seed={self.seed}, auth={auth})"

    def __len__(self) -> int:
        """How many jobs the simulator holds, future ones included."""
        return len(self._jobs)

    @property
    def app(self) -> Simulator:
        """The ASGI app (the simulator itself), for ``httpx.ASGITransport`` or ``serve_asgi``."""
        return self

    # -- creating jobs -----------------------------------------------------------------------

    def create_job(
        self,
        *,
        model: str = DEFAULT_MODEL,
        suffix: str | None = None,
        metadata: Mapping[str, str] | None = None,
        created_at: float | None = None,
        script: Sequence[StepLike] | None = None,
        job_id: str | None = None,
        training_file: str | None = None,
        validation_file: str | None = None,
        seed: int | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        method: Mapping[str, Any] | None = None,
        integrations: Sequence[Mapping[str, Any]] | None = None,
        train_seconds: float | None = None,
    ) -> str:
        """Add a job and return its id.

        ``script`` is a list of :class:`~watcher.simulator.jobs.Step` (or ``(seconds after
        creation, status[, error[, fields]])`` tuples); without one the job follows a seeded
        random progression ``validating_files -> queued -> running -> succeeded`` (or
        ``failed``, with probability :attr:`failure_rate`). A job created in the future
        (``created_at`` after now) is invisible until then. ``train_seconds`` sets how long a
        full training run takes, which paces metrics, checkpoints and ``estimated_finish``.
        """
        job = self._new_job(
            model=model,
            suffix=suffix,
            metadata=metadata,
            created_at=created_at,
            script=script,
            job_id=job_id,
            training_file=training_file,
            validation_file=validation_file,
            seed=seed,
            hyperparameters=hyperparameters,
            method=method,
            integrations=integrations,
            train_seconds=train_seconds,
        )
        self._jobs[job.id] = job
        bisect.insort(self._order, job.order_key)
        return job.id

    def add_jobs(
        self,
        n: int,
        status: str = "succeeded",
        *,
        model: str = DEFAULT_MODEL,
        metadata: Mapping[str, str] | None = None,
        start: float | None = None,
        interval: float = 60.0,
        duration: float = 900.0,
    ) -> list[str]:
        """Add ``n`` jobs that are already in ``status`` (and stay there); return their ids.

        Job ``i`` is created at ``start + i * interval``; by default ``start`` is far enough in
        the past that every job has reached ``status`` by now. Finished jobs took ``duration``
        seconds; active ones (``validating_files``, ``queued``, ``running``) never move on; any
        other status (``paused``, ``pending``) holds from creation.
        """
        if n < 0:
            raise ValueError("n must not be negative")
        now = self.clock.now()
        first = start if start is not None else now - duration - interval * n
        script = self._bulk_script(status, duration)
        train = _BULK_ACTIVE_TRAIN_SECONDS if status not in TERMINAL_STATUSES else None
        jobs = [
            self._new_job(
                model=model,
                metadata=metadata,
                created_at=first + i * interval,
                script=script,
                train_seconds=train,
            )
            for i in range(n)
        ]
        for job in jobs:
            self._jobs[job.id] = job
        self._order.extend(job.order_key for job in jobs)
        self._order.sort()
        return [job.id for job in jobs]

    def _bulk_script(self, status: str, duration: float) -> list[Step]:
        if status in _ACTIVE_SCRIPTS:
            return list(_ACTIVE_SCRIPTS[status])
        if status not in TERMINAL_STATUSES:
            return [Step(0, status)]
        begin = [Step(0, "validating_files"), Step(duration * 0.05, "queued")]
        if status == "cancelled":
            return [*begin, Step(duration * 0.5, "cancelled")]
        error = RUN_FAILURES[0] if status == "failed" else None
        return [*begin, Step(duration * 0.15, "running"), Step(duration, status, error)]

    def _new_job(
        self,
        *,
        model: str,
        metadata: Mapping[str, str] | None,
        created_at: float | None,
        script: Sequence[StepLike] | None,
        suffix: str | None = None,
        job_id: str | None = None,
        training_file: str | None = None,
        validation_file: str | None = None,
        seed: int | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        method: Mapping[str, Any] | None = None,
        integrations: Sequence[Mapping[str, Any]] | None = None,
        train_seconds: float | None = None,
    ) -> SimJob:
        rng = self._rng
        if job_id is None:
            job_id = "ftjob-" + random_token(rng)
            while job_id in self._jobs:
                job_id = "ftjob-" + random_token(rng)
        elif job_id in self._jobs:
            raise ValueError(f"a job with id {job_id!r} already exists")
        if script is None:
            steps, planned = random_script(rng, self.failure_rate)
        else:
            steps = coerce_script(script)
            planned = planned_train_seconds(steps)
        method_type = str((method or {}).get("type") or "supervised")
        in_method = ((method or {}).get(method_type) or {}).get("hyperparameters") or {}
        requested = {**_AUTO_HYPERPARAMETERS, **(hyperparameters or {}), **in_method}
        return SimJob(
            job_id=job_id,
            created_at=self.clock.now() if created_at is None else created_at,
            steps=steps,
            train_seconds=planned if train_seconds is None else train_seconds,
            profile=Profile.draw(rng, requested),
            model=resolve_model(model),
            training_file=training_file or "file-" + random_token(rng),
            validation_file=validation_file,
            suffix=suffix,
            seed=rng.randrange(2**31) if seed is None else seed,
            metadata=metadata,
            integrations=integrations,
            hyperparameters=requested,
            method={**(method or {}), "type": method_type},
            organization_id=self.organization_id,
            org_slug="ftwatch-sim",
        )

    # -- reading and controlling jobs --------------------------------------------------------

    def _get(self, job_id: str) -> SimJob:
        job = self._jobs.get(job_id)
        if job is None or job.created_at > self.clock.now():
            raise JobNotFound(f"No fine-tuning job with id {job_id!r}.")
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's JSON as the API would return it now; :class:`JobNotFound` if unknown."""
        return self._get(job_id).render(self.clock.now())

    def status(self, job_id: str) -> str:
        """The job's status now."""
        return self._get(job_id).status(self.clock.now())

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """Every event of the job so far, newest first."""
        return self._get(job_id).events(self.clock.now())

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        """Every checkpoint of the job so far, newest first."""
        return self._get(job_id).public_checkpoints(self.clock.now())

    def job_ids(self) -> list[str]:
        """The ids of the jobs visible now, newest first (as the list endpoint orders them)."""
        visible = self._visible_count()
        return [job_id for _, job_id in reversed(self._order[:visible])]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job now and return it; :class:`InvalidJobState` if it has finished."""
        job = self._get(job_id)
        job.cancel(self.clock.now())
        return job.render(self.clock.now())

    def pause(self, job_id: str) -> dict[str, Any]:
        """Pause a running job now and return it; :class:`InvalidJobState` otherwise."""
        job = self._get(job_id)
        job.pause(self.clock.now())
        return job.render(self.clock.now())

    def resume(self, job_id: str) -> dict[str, Any]:
        """Resume a paused job now (its timeline moves by the time paused) and return it."""
        job = self._get(job_id)
        job.resume(self.clock.now())
        return job.render(self.clock.now())

    def set_status(self, job_id: str, status: str, **fields: Any) -> dict[str, Any]:
        """Force ``status`` (any string, ``"pending"`` included) from now on and return the job.

        The job stays there until changed again; ``fields`` override fields of its JSON
        (``error=...``, ``fine_tuned_model=...``, or a field the API does not have).
        """
        job = self._get(job_id)
        job.force(self.clock.now(), status, fields)
        return job.render(self.clock.now())

    def remove(self, job_id: str) -> None:
        """Forget a job, as if it had been deleted upstream."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            raise JobNotFound(f"No fine-tuning job with id {job_id!r}.")
        index = bisect.bisect_left(self._order, job.order_key)
        del self._order[index]

    def release_hangs(self) -> int:
        """Let every hung request go (each answers 503); return how many there were."""
        hung = list(self._hangs)
        for scope in hung:
            scope.cancel()
        return len(hung)

    def _visible_count(self) -> int:
        # Ids are ASCII, so this sorts after every id created at ``now``.
        return bisect.bisect_right(self._order, (self.clock.now(), "\U0010ffff"))

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: HTTP requests and the lifespan protocol."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        method = str(scope["method"]).upper()
        path = str(scope["path"])
        route = _route(method, path)
        self.stats.record(route.kind)
        fault = self.faults.draw(path, route.kind)
        if self.faults.latency > 0:
            await anyio.sleep(self.faults.latency)
        if fault is not None:
            self.stats.faults += 1
        if fault is not None and fault.action == "hang":
            if not await self._hang(receive):
                return
            answer = _error(503, "The server is shutting down.", kind="server_error")
        elif fault is not None and fault.action == "error":
            answer = _fault_answer(fault)
        else:
            answer = self._answer(scope, method, route, body)
            if fault is not None:
                answer = _malform(answer, fault)
        await self._send(send, answer)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _hang(self, receive: Receive) -> bool:
        """Wait until the client leaves (False) or :meth:`release_hangs` is called (True)."""
        with anyio.CancelScope() as scope:
            self._hangs.add(scope)
            try:
                while (await receive())["type"] != "http.disconnect":
                    pass
            finally:
                self._hangs.discard(scope)
        return scope.cancelled_caught

    async def _send(self, send: Send, answer: _Answer) -> None:
        self._requests += 1
        headers = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(answer.body)).encode()),
            (
                b"x-request-id",
                ("req_" + stable_token("request", self._requests, length=32)).encode(),
            ),
            *answer.headers,
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    def _answer(self, scope: Scope, method: str, route: _Route, body: bytes) -> _Answer:
        denied = self._check_auth(scope)
        if denied is not None:
            return denied
        if route.kind == "other":
            path = str(scope["path"])
            return _error(404, f"Invalid URL ({method} {path})", code="unknown_url")
        if not route.allowed:
            return _error(405, f"Method {method} is not allowed here.", code="method_not_allowed")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), True))
        try:
            return self._handle(route, query, body)
        except _BadRequest as exc:
            return exc.answer
        except JobNotFound:
            return _error(
                404,
                f"Could not find fine-tuning job: {route.job_id}",
                param="fine_tuning_job_id",
                code="fine_tune_not_found",
            )
        except InvalidJobState as exc:
            return _error(400, str(exc), param="fine_tuning_job_id", code="invalid_job_state")

    def _check_auth(self, scope: Scope) -> _Answer | None:
        if self._api_key is None:
            return None
        given = b""
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                given = value
        if not given.strip():
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        scheme, _, token = given.strip().partition(b" ")
        # Constant time, and the message never quotes what was sent: it may be a real key.
        if scheme.lower() != b"bearer" or not hmac.compare_digest(
            token.strip(), self._api_key.encode()
        ):
            return _error(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    def _handle(self, route: _Route, query: Mapping[str, str], body: bytes) -> _Answer:
        now = self.clock.now()
        if route.kind == "list":
            return self._list_jobs(query)
        if route.kind == "create":
            job_id = self.create_job(**_create_arguments(body))
            return _json(200, self._jobs[job_id].render(now))
        assert route.job_id is not None
        job = self._get(route.job_id)
        if route.kind == "retrieve":
            return _json(200, job.render(now))
        if route.kind == "events":
            return self._list_items(job.events(now), query, default_limit=20)
        if route.kind == "checkpoints":
            return self._list_items(job.public_checkpoints(now), query, default_limit=10)
        if route.kind == "cancel":
            job.cancel(now)
        elif route.kind == "pause":
            job.pause(now)
        elif route.kind == "resume":
            job.resume(now)
        return _json(200, job.render(now))

    def _endless(self) -> EndlessMode | None:
        return self.faults.check_endless_mode() if self.faults.endless_pages else None

    def _list_jobs(self, query: Mapping[str, str]) -> _Answer:
        limit = _limit(query, 20)
        wanted = {
            k[9:-1]: v for k, v in query.items() if k.startswith("metadata[") and k[-1] == "]"
        }
        no_metadata = query.get("metadata") == "null"
        visible = self._visible_count()
        after = query.get("after")
        cursor: tuple[float, str] | None = None
        if after:
            job = self._jobs.get(after)
            if job is None or job.created_at > self.clock.now():
                raise _BadRequest(400, f"Invalid 'after': no job with id {after!r}.", param="after")
            cursor = job.order_key
        if wanted or no_metadata:
            # A filter needs a scan; it is only for tests and small simulated accounts.
            ids = [
                key[1]
                for key in reversed(self._order[:visible])
                if _metadata_matches(self._jobs[key[1]].metadata, wanted, no_metadata)
            ]
            start = 0
            if cursor is not None:
                start = next(
                    (i for i, j in enumerate(ids) if self._jobs[j].order_key < cursor), len(ids)
                )
            page, has_more = _paginate(
                len(ids), start, limit, lambda a, b: ids[a:b], self._endless()
            )
        else:
            order = self._order

            def newest_first(a: int, b: int) -> list[str]:
                return [key[1] for key in reversed(order[max(0, visible - b) : visible - a])]

            start = 0
            if cursor is not None:
                start = visible - bisect.bisect_left(order, cursor)
            page, has_more = _paginate(visible, start, limit, newest_first, self._endless())
        now = self.clock.now()
        data = [self._jobs[job_id].render(now) for job_id in page]
        return _json(200, {"object": "list", "data": data, "has_more": has_more})

    def _list_items(
        self, items: list[dict[str, Any]], query: Mapping[str, str], *, default_limit: int
    ) -> _Answer:
        limit = _limit(query, default_limit)
        after = query.get("after")
        start = 0
        if after:
            index = next((i for i, item in enumerate(items) if item["id"] == after), None)
            if index is None:
                raise _BadRequest(
                    400, f"Invalid 'after': no item with id {after!r}.", param="after"
                )
            start = index + 1
        page, has_more = _paginate(
            len(items), start, limit, lambda a, b: items[a:b], self._endless()
        )
        return _json(
            200,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": has_more,
            },
        )


def _metadata_matches(
    metadata: Mapping[str, str] | None, wanted: Mapping[str, str], no_metadata: bool
) -> bool:
    if no_metadata:
        return not metadata
    return metadata is not None and all(metadata.get(k) == v for k, v in wanted.items())


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _fault_answer(fault: Fault) -> _Answer:
    headers: list[tuple[bytes, bytes]] = []
    if fault.retry_after is not None:
        seconds = max(0.0, fault.retry_after)
        # Retry-After takes whole seconds; OpenAI's retry-after-ms carries the exact wait.
        headers.append((b"retry-after", str(int(-(-seconds // 1))).encode()))
        headers.append((b"retry-after-ms", str(int(seconds * 1000)).encode()))
    status = fault.status
    if status == 429:
        return _error(
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
        return _error(503, message, kind="server_error", headers=headers)
    if status >= 500:
        message = "The server had an error while processing your request. Sorry about that!"
        return _error(status, message, kind="server_error", headers=headers)
    return _error(status, f"Injected error (HTTP {status}).", headers=headers)


def _html(status: int, headers: Sequence[tuple[bytes, bytes]] = ()) -> _Answer:
    page = _HTML_PAGE.format(status=status, reason=_REASONS.get(status, "Error"))
    return _Answer(status, page.encode(), list(headers), b"text/html; charset=UTF-8")


def _malform(answer: _Answer, fault: Fault) -> _Answer:
    if fault.malformed == "html":
        return _html(fault.status)
    # Half of a JSON object can never parse: its braces do not balance.
    cut = answer.body[: max(1, len(answer.body) // 2)]
    return _Answer(fault.status, cut, [], answer.content_type)


def _create_arguments(body: bytes) -> dict[str, Any]:
    """Check a CreateFineTuningJobRequest body and turn it into :meth:`create_job` arguments."""
    try:
        request = json.loads(body or b"null")
    except ValueError:
        raise _BadRequest(
            400,
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON "
            "payload.",
            code="invalid_json",
        ) from None
    if not isinstance(request, dict):
        raise _BadRequest(400, "The request body must be a JSON object.", code="invalid_json")
    for name in ("model", "training_file"):
        if name not in request:
            raise _BadRequest(
                400,
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
    checks: dict[str, tuple[type | tuple[type, ...], bool]] = {
        "model": (str, False),
        "training_file": (str, False),
        "validation_file": (str, True),
        "suffix": (str, True),
        "seed": (int, True),
        "hyperparameters": (dict, True),
        "method": (dict, True),
        "metadata": (dict, True),
        "integrations": (list, True),
    }
    for name, (kind, nullable) in checks.items():
        value = request.get(name)
        if name not in request or (value is None and nullable):
            continue
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            raise _BadRequest(400, f"Invalid type for '{name}'.", param=name, code="invalid_type")
    suffix = request.get("suffix")
    if suffix is not None and len(suffix) > 64:
        raise _BadRequest(
            400, "'suffix' must be at most 64 characters.", param="suffix", code="invalid_value"
        )
    metadata = request.get("metadata")
    if metadata is not None and (
        len(metadata) > 16
        or not all(isinstance(k, str) and len(k) <= 64 for k in metadata)
        or not all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
    ):
        raise _BadRequest(
            400,
            "'metadata' takes at most 16 string keys (64 characters) and string values "
            "(512 characters).",
            param="metadata",
            code="invalid_value",
        )
    method = request.get("method")
    if method is not None and method.get("type") not in ("supervised", "dpo", "reinforcement"):
        raise _BadRequest(
            400,
            "'method.type' must be one of 'supervised', 'dpo', 'reinforcement'.",
            param="method.type",
            code="invalid_value",
        )
    return {
        "model": request["model"],
        "training_file": request["training_file"],
        "validation_file": request.get("validation_file"),
        "suffix": suffix,
        "seed": request.get("seed"),
        "hyperparameters": request.get("hyperparameters"),
        "method": method,
        "metadata": metadata,
        "integrations": request.get("integrations"),
    }


@asynccontextmanager
async def serve_simulator(
    sim: Simulator, host: str = "127.0.0.1", port: int = 8089
) -> AsyncIterator[str]:
    """Serve ``sim`` on ``host:port`` (0 picks a free port); yield its base URL, ``/v1`` included.

    Hung requests are released before the server stops, so shutting down never waits on them.
    """
    async with serve_asgi(sim.app, host=host, port=port) as base_url:
        try:
            yield base_url + "/v1"
        finally:
            sim.release_hangs()
