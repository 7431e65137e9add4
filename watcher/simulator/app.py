"""The simulator: a store of simulated jobs, the controls tests use, and the ASGI app over them.

:class:`Simulator` holds the jobs in a list sorted by ``(created_at, id)`` and is itself the ASGI
app: :func:`~watcher.simulator.routing.route` names the endpoint, the handlers in
:mod:`~watcher.simulator.handlers` answer, and every answer goes through
:class:`~watcher.simulator.faults.Faults` first.
"""

from __future__ import annotations

import bisect
import hmac
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import parse_qsl

import anyio

from ..asgi import Receive, Scope, Send, lifespan, read_body, send_response, wait_for_disconnect
from ..clock import Clock, ScaledClock, SystemClock
from ..serving import serve_asgi
from .answers import Answer, BadRequest, error, fault_answer, json_answer, malform
from .faults import EndlessMode, Faults
from .handlers import create_arguments, list_items, list_jobs
from .jobs import (
    DEFAULT_MODEL,
    InvalidJobState,
    JobNotFound,
    Profile,
    SimJob,
    random_token,
    resolve_model,
    stable_token,
)
from .routing import Route, Stats, route
from .scripts import (
    TERMINAL_STATUSES,
    StepLike,
    bulk_script,
    coerce_script,
    planned_train_seconds,
    random_script,
)

__all__ = ["Simulator", "serve_simulator"]

_AUTO_HYPERPARAMETERS: Final = {
    "batch_size": "auto",
    "learning_rate_multiplier": "auto",
    "n_epochs": "auto",
}
# An active job made in bulk trains for a day, so it looks busy for the whole of a benchmark.
_BULK_ACTIVE_TRAIN_SECONDS: Final = 86_400.0


class Simulator:
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
        # An accelerated clock runs ahead of the wall clock: the API's timestamps must not.
        self._wall = clock.wall_time if isinstance(clock, ScaledClock) else None

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
        script = bulk_script(status, duration)
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
            wall=self._wall,
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
