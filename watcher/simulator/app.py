"""The simulator as an ASGI app: the controls of :mod:`~watcher.simulator.controls`, served.

:class:`Simulator` is itself the ASGI app: :func:`~watcher.simulator.routing.route` names the
endpoint, the handlers in :mod:`~watcher.simulator.handlers` answer, and every answer goes
through :class:`~watcher.simulator.faults.Faults` first.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

import anyio

from ..asgi import Receive, Scope, Send, lifespan, read_body, send_response, wait_for_disconnect
from ..clock import Clock
from ..serving import serve_asgi
from .answers import Answer, BadRequest, error, fault_answer, json_answer, malform
from .controls import JobControls
from .faults import EndlessMode, Faults
from .handlers import create_arguments, list_items, list_jobs
from .jobs import (
    InvalidJobState,
    JobNotFound,
    stable_token,
)
from .routing import Route, Stats, route

__all__ = ["Simulator", "serve_simulator"]


class Simulator(JobControls):
    """A fake OpenAI fine-tuning API: jobs that progress on ``clock``, served as an ASGI app.

    ``seed`` fixes every random choice: job ids, progressions, and the probabilistic faults of
    the default :class:`Faults`. With ``api_key`` set, requests must carry
    ``Authorization: Bearer <api_key>``. The simulator itself is the ASGI callable (also as
    :attr:`app`); nothing runs in the background, so a :class:`~watcher.clock.ManualClock`
    moves every job just by being advanced. Under a :class:`~watcher.clock.ScaledClock` jobs
    move at its speed, but the timestamps the API shows (``created_at``, ``finished_at``,
    events, ``estimated_finish``) are the wall-clock moments those steps happen at, so they
    never lie in the future.
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
        super().__init__(
            clock, seed=seed, organization_id=organization_id, failure_rate=failure_rate
        )
        self.faults = faults if faults is not None else Faults(seed=seed)
        self.stats = Stats()
        self._api_key = api_key
        self._hangs: set[anyio.CancelScope] = set()
        self._requests = 0

    def __repr__(self) -> str:
        """Name the job count and the seed; never the API key."""
        auth = "on" if self._api_key is not None else "off"
        return f"Simulator(jobs={len(self._jobs)}, seed={self.seed}, auth={auth})"

    @property
    def app(self) -> Simulator:
        """The ASGI app (the simulator itself), for ``httpx.ASGITransport`` or ``serve_asgi``."""
        return self

    def release_hangs(self) -> int:
        """Let every hung request go (each answers 503); return how many there were."""
        hung = list(self._hangs)
        for scope in hung:
            scope.cancel()
        return len(hung)

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: HTTP requests and the lifespan protocol."""
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        method = str(scope["method"]).upper()
        path = str(scope["path"])
        where = route(method, path)
        self.stats.record(where.kind)
        fault = self.faults.draw(path, where.kind)
        if self.faults.latency > 0:
            await anyio.sleep(self.faults.latency)
        if fault is not None:
            self.stats.faults += 1
        if fault is not None and fault.action == "hang":
            if not await self._hang(receive):
                return
            answer = error(503, "The server is shutting down.", kind="server_error")
        elif fault is not None and fault.action == "error":
            answer = fault_answer(fault)
        else:
            answer = self._answer(scope, method, where, body)
            if fault is not None:
                answer = malform(answer, fault)
        await self._send(send, answer)

    async def _hang(self, receive: Receive) -> bool:
        """Wait until the client leaves (False) or :meth:`release_hangs` is called (True)."""
        with anyio.CancelScope() as scope:
            self._hangs.add(scope)
            try:
                await wait_for_disconnect(receive)
            finally:
                self._hangs.discard(scope)
        return scope.cancelled_caught

    async def _send(self, send: Send, answer: Answer) -> None:
        self._requests += 1
        request_id = "req_" + stable_token("request", self._requests, length=32)
        headers = [
            (b"content-type", answer.content_type),
            (b"x-request-id", request_id.encode()),
            *answer.headers,
        ]
        await send_response(send, answer.status, answer.body, headers)

    def _answer(self, scope: Scope, method: str, route: Route, body: bytes) -> Answer:
        denied = self._check_auth(scope)
        if denied is not None:
            return denied
        if route.kind == "other":
            path = str(scope["path"])
            return error(404, f"Invalid URL ({method} {path})", code="unknown_url")
        if not route.allowed:
            return error(405, f"Method {method} is not allowed here.", code="method_not_allowed")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), True))
        try:
            return self._handle(route, query, body)
        except BadRequest as exc:
            return exc.answer
        except JobNotFound:
            return error(
                404,
                f"Could not find fine-tuning job: {route.job_id}",
                param="fine_tuning_job_id",
                code="fine_tune_not_found",
            )
        except InvalidJobState as exc:
            return error(400, str(exc), param="fine_tuning_job_id", code="invalid_job_state")

    def _check_auth(self, scope: Scope) -> Answer | None:
        if self._api_key is None:
            return None
        given = b""
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                given = value
        if not given.strip():
            return error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        scheme, _, token = given.strip().partition(b" ")
        # Constant time, and the message never quotes what was sent: it may be a real key.
        if scheme.lower() != b"bearer" or not hmac.compare_digest(
            token.strip(), self._api_key.encode()
        ):
            return error(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    def _handle(self, route: Route, query: Mapping[str, str], body: bytes) -> Answer:
        now = self.clock.now()
        if route.kind == "list":
            return list_jobs(
                self._jobs, self._order, self._visible_count(), now, query, self._endless()
            )
        if route.kind == "create":
            job_id = self.create_job(**create_arguments(body))
            return json_answer(200, self._jobs[job_id].render(now))
        assert route.job_id is not None
        job = self._get(route.job_id)
        if route.kind == "retrieve":
            return json_answer(200, job.render(now))
        if route.kind == "events":
            return list_items(job.events(now), query, self._endless(), default_limit=20)
        if route.kind == "checkpoints":
            checkpoints = job.public_checkpoints(now)
            return list_items(checkpoints, query, self._endless(), default_limit=10)
        if route.kind == "cancel":
            job.cancel(now)
        elif route.kind == "pause":
            job.pause(now)
        elif route.kind == "resume":
            job.resume(now)
        return json_answer(200, job.render(now))

    def _endless(self) -> EndlessMode | None:
        return self.faults.check_endless_mode() if self.faults.endless_pages else None


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
