"""The webhook sink, end to end against a real loopback receiver (watcher.testing_receiver)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import openai
import pytest
import standardwebhooks
from openai.types.webhooks import (
    FineTuningJobCancelledWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobSucceededWebhookEvent,
)
from pydantic import ValidationError
from structlog.testing import capture_logs

from ftwatch_webhook import WebhookConfig, WebhookSink, redact_url
from watcher.diff import diff
from watcher.errors import SinkDisabled, SinkError, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent
from watcher.models import FineTuningJob
from watcher.serving import serve_asgi
from watcher.sinks import sink_plugin
from watcher.testing_receiver import RecordingReceiver

SECRET = "whsec_" + base64.b64encode(b"ftwatch-webhook-test-secret-32b!").decode()
TOKEN = "qtok-7f3a9c1e5b"
HEADER_VALUE = "Bearer hdr-4d2b8e6a0c"
JOB_ID = "ftjob-abc123"
T0 = 1_719_168_000.0


def _job(status: str, **fields: Any) -> FineTuningJob:
    return FineTuningJob(
        id=JOB_ID,
        status=status,
        model="gpt-4o-mini-2024-07-18",
        created_at=int(T0) - 600,
        training_file="file-abc",
        **fields,
    )


def _event(wire_type: str) -> BaseEvent:
    """Build the event of ``wire_type`` the way the poller would, through diff()."""
    if wire_type == "fine_tuning.job.created":
        _, created = diff(None, _job("validating_files"), source="openai", now=T0)
        return created[0]
    final = {
        "fine_tuning.job.status_changed": _job("running"),
        "fine_tuning.job.succeeded": _job(
            "succeeded",
            fine_tuned_model="ft:gpt-4o-mini-2024-07-18:acme::abc123",
            trained_tokens=12_345,
            finished_at=int(T0) + 3600,
        ),
        "fine_tuning.job.failed": _job(
            "failed",
            error={"code": "invalid_training_file", "message": "Line 3 is not JSON", "param": None},
            finished_at=int(T0) + 60,
        ),
        "fine_tuning.job.cancelled": _job("cancelled", finished_at=int(T0) + 60),
    }[wire_type]
    before = "queued" if wire_type.endswith("status_changed") else "running"
    state, _ = diff(None, _job(before), source="openai", now=T0, announce_new=False)
    _, events = diff(state, final, source="openai", now=T0 + 60)
    (event,) = [e for e in events if e.type == wire_type]
    return event


ALL_TYPES = [
    "fine_tuning.job.created",
    "fine_tuning.job.status_changed",
    "fine_tuning.job.succeeded",
    "fine_tuning.job.failed",
    "fine_tuning.job.cancelled",
]


@pytest.fixture
async def served() -> AsyncIterator[tuple[RecordingReceiver, str]]:
    """A RecordingReceiver listening on a real loopback socket, and its base URL."""
    receiver = RecordingReceiver()
    async with serve_asgi(receiver) as base_url:
        yield receiver, base_url


def _config(base_url: str, **overrides: Any) -> WebhookConfig:
    values: dict[str, Any] = {
        "name": "hooks",
        "type": "webhook",
        "url": f"{base_url}/hooks/ftwatch?token={TOKEN}",
        "secret": SECRET,
        "headers": {"Authorization": HEADER_VALUE},
        "timeout": 5,
    }
    values.update(overrides)
    return WebhookConfig.model_validate(values)


async def _send(config: WebhookConfig, event: BaseEvent) -> None:
    async with WebhookSink(config) as sink:
        with anyio.fail_after(5):
            await sink.send(event)


async def _send_error(config: WebhookConfig, event: BaseEvent) -> SinkError:
    with pytest.raises(SinkError) as caught:
        await _send(config, event)
    return caught.value


def _assert_no_secret(text: str) -> None:
    for secret in (SECRET, SECRET.removeprefix("whsec_"), TOKEN, HEADER_VALUE):
        assert secret not in text


# --- what is sent -------------------------------------------------------------------------------


async def test_body_is_exactly_the_event_json(served: tuple[RecordingReceiver, str]) -> None:
    """The receiver gets the envelope JSON byte for byte, POSTed to the configured path."""
    receiver, base_url = served
    event = _event("fine_tuning.job.succeeded")
    await _send(_config(base_url), event)
    with anyio.fail_after(5):
        (request,) = await receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/hooks/ftwatch"
    assert request.query == f"token={TOKEN}"
    assert request.body == event.to_json().encode()
    assert request.json()["data"]["fine_tuned_model"] == "ft:gpt-4o-mini-2024-07-18:acme::abc123"


async def test_delivery_headers(served: tuple[RecordingReceiver, str]) -> None:
    """A delivery carries the Standard Webhooks headers, content type, user agent and extras."""
    receiver, base_url = served
    event = _event("fine_tuning.job.failed")
    before = int(time.time())
    await _send(_config(base_url), event)
    after = int(time.time())
    with anyio.fail_after(5):
        (request,) = await receiver.wait_for(1)
    headers = request.headers
    assert headers["webhook-id"] == event.id
    assert before <= int(headers["webhook-timestamp"]) <= after
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("ftwatch/")
    assert headers["authorization"] == HEADER_VALUE


async def test_signature_is_hmac_of_id_timestamp_body(
    served: tuple[RecordingReceiver, str],
) -> None:
    """The signature is base64 HMAC-SHA256 of "id.timestamp.body", stamped with the sink's clock."""
    receiver, base_url = served
    event = _event("fine_tuning.job.cancelled")
    async with WebhookSink(_config(base_url), now=lambda: 1_700_000_123.9) as sink:
        with anyio.fail_after(5):
            await sink.send(event)
        (request,) = await receiver.wait_for(1)
    assert request.headers["webhook-timestamp"] == "1700000123"
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{event.id}.1700000123.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"


async def test_unsigned_without_secret(served: tuple[RecordingReceiver, str]) -> None:
    """Without a secret the delivery has webhook-id and -timestamp but no signature."""
    receiver, base_url = served
    event = _event("fine_tuning.job.created")
    await _send(_config(base_url, secret=None), event)
    with anyio.fail_after(5):
        (request,) = await receiver.wait_for(1)
    assert request.headers["webhook-id"] == event.id
    assert "webhook-timestamp" in request.headers
    assert "webhook-signature" not in request.headers


# --- receivers verify it ------------------------------------------------------------------------


async def test_openai_sdk_unwraps_our_deliveries(served: tuple[RecordingReceiver, str]) -> None:
    """OpenAI's own SDK verifies our signature and parses each terminal event as its typed event."""
    receiver, base_url = served
    expected = {
        "fine_tuning.job.succeeded": FineTuningJobSucceededWebhookEvent,
        "fine_tuning.job.failed": FineTuningJobFailedWebhookEvent,
        "fine_tuning.job.cancelled": FineTuningJobCancelledWebhookEvent,
    }
    events = [_event(wire_type) for wire_type in expected]
    async with WebhookSink(_config(base_url)) as sink:
        for event in events:
            await sink.send(event)
    with anyio.fail_after(5):
        requests = await receiver.wait_for(len(events))
    with openai.OpenAI(api_key="sk-test", webhook_secret=SECRET) as client:
        for event, request in zip(events, requests, strict=True):
            unwrapped = client.webhooks.unwrap(request.body, request.headers)
            assert type(unwrapped) is expected[event.type], event.type
            assert isinstance(
                unwrapped,
                FineTuningJobSucceededWebhookEvent
                | FineTuningJobFailedWebhookEvent
                | FineTuningJobCancelledWebhookEvent,
            )
            assert (unwrapped.type, unwrapped.id) == (event.type, event.id)
            assert unwrapped.data.id == JOB_ID


async def test_standardwebhooks_verifies_every_event_type(
    served: tuple[RecordingReceiver, str],
) -> None:
    """standardwebhooks accepts the delivery of every event type and returns its envelope."""
    receiver, base_url = served
    events = [_event(wire_type) for wire_type in ALL_TYPES]
    async with WebhookSink(_config(base_url)) as sink:
        for event in events:
            await sink.send(event)
    with anyio.fail_after(5):
        requests = await receiver.wait_for(len(events))
    verifier = standardwebhooks.Webhook(SECRET)
    for event, request in zip(events, requests, strict=True):
        assert verifier.verify(request.body, request.headers) == event.envelope(), event.type


async def test_standardwebhooks_rejects_tampering(served: tuple[RecordingReceiver, str]) -> None:
    """A changed body, a changed id or a wrong secret fails verification."""
    receiver, base_url = served
    await _send(_config(base_url), _event("fine_tuning.job.succeeded"))
    with anyio.fail_after(5):
        (request,) = await receiver.wait_for(1)
    verifier = standardwebhooks.Webhook(SECRET)
    tampered = request.body.replace(b'"succeeded"', b'"cancelled"', 1)
    assert tampered != request.body
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verifier.verify(tampered, request.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verifier.verify(request.body, {**request.headers, "webhook-id": "evt_other"})
    other = "whsec_" + base64.b64encode(b"another-secret-entirely-32bytes!").decode()
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(request.body, request.headers)


# --- what the answer means ----------------------------------------------------------------------


async def test_2xx_is_delivered(served: tuple[RecordingReceiver, str]) -> None:
    """Any 2xx answer counts as delivered: send returns its status as the receipt."""
    receiver, base_url = served
    async with WebhookSink(_config(base_url)) as sink:
        for status in (200, 201, 202, 204):
            receiver.respond(status, b"" if status == 204 else b"ok")
            assert await sink.send(_event("fine_tuning.job.succeeded")) == f"HTTP {status}"
    assert len(receiver.requests) == 4


async def test_410_disables_the_sink(served: tuple[RecordingReceiver, str]) -> None:
    """410 Gone raises SinkDisabled, saying the receiver asked not to be called again."""
    receiver, base_url = served
    receiver.respond(410)
    error = await _send_error(_config(base_url), _event("fine_tuning.job.succeeded"))
    assert isinstance(error, SinkDisabled)
    assert error.sink == "hooks"
    assert error.status_code == 410
    assert str(error) == (
        "sink 'hooks': the receiver answered 410 Gone, asking not to be called again"
    )


async def test_other_4xx_rejects_the_event(served: tuple[RecordingReceiver, str]) -> None:
    """A 4xx other than 408/409/410/429 raises SinkRejected: retrying this event cannot help."""
    receiver, base_url = served
    async with WebhookSink(_config(base_url)) as sink:
        for status in (400, 401, 403, 404, 422):
            receiver.respond(status, b'{"error": "bad"}')
            with pytest.raises(SinkRejected) as caught:
                await sink.send(_event("fine_tuning.job.failed"))
            assert (caught.value.sink, caught.value.status_code) == ("hooks", status)
            assert str(caught.value) == (
                f"sink 'hooks': the receiver rejected the event with HTTP {status}"
            )


async def test_redirect_rejects_the_event(served: tuple[RecordingReceiver, str]) -> None:
    """A redirect is not followed; the error says to configure the final address."""
    receiver, base_url = served
    receiver.respond(307, headers={"location": "http://127.0.0.1:1/elsewhere"})
    error = await _send_error(_config(base_url), _event("fine_tuning.job.failed"))
    assert isinstance(error, SinkRejected)
    assert error.status_code == 307
    assert "final address" in str(error)
    assert len(receiver.requests) == 1


async def test_transient_statuses_are_unavailable(served: tuple[RecordingReceiver, str]) -> None:
    """408, 409, 429 and 5xx raise SinkUnavailable (retried later), without a Retry-After hint."""
    receiver, base_url = served
    async with WebhookSink(_config(base_url)) as sink:
        for status in (408, 409, 429, 500, 502, 503):
            receiver.respond(status)
            with pytest.raises(SinkUnavailable) as caught:
                await sink.send(_event("fine_tuning.job.succeeded"))
            error = caught.value
            assert (error.sink, error.status_code, error.retry_after) == ("hooks", status, None)
            assert str(error) == (
                f"sink 'hooks': the receiver answered HTTP {status}, a temporary failure"
            )


async def test_retry_after_is_carried(served: tuple[RecordingReceiver, str]) -> None:
    """A Retry-After in seconds on 429 or 503 becomes the error's retry_after."""
    receiver, base_url = served
    async with WebhookSink(_config(base_url)) as sink:
        for status in (429, 503):
            receiver.respond(status, headers={"Retry-After": "7"})
            with pytest.raises(SinkUnavailable) as caught:
                await sink.send(_event("fine_tuning.job.succeeded"))
            assert caught.value.retry_after == 7.0


async def test_same_id_on_every_attempt(served: tuple[RecordingReceiver, str]) -> None:
    """Retries of one event after failures carry the same webhook-id, so receivers can dedupe."""
    receiver, base_url = served
    receiver.fail_first(2, 503)
    event = _event("fine_tuning.job.succeeded")
    async with WebhookSink(_config(base_url)) as sink:
        for _ in range(2):
            with pytest.raises(SinkUnavailable):
                await sink.send(event)
        await sink.send(event)
    with anyio.fail_after(5):
        requests = await receiver.wait_for(3)
    assert {r.headers["webhook-id"] for r in requests} == {event.id}
    assert {r.body for r in requests} == {event.to_json().encode()}


# --- when nobody answers ------------------------------------------------------------------------


async def test_hanging_receiver_times_out(served: tuple[RecordingReceiver, str]) -> None:
    """A receiver that never answers gives SinkUnavailable once the sink's timeout passes."""
    receiver, base_url = served
    receiver.hang()
    error = await _send_error(_config(base_url, timeout="200ms"), _event("fine_tuning.job.failed"))
    assert isinstance(error, SinkUnavailable)
    assert error.status_code is None
    assert str(error).startswith("sink 'hooks': timed out waiting for the receiver after ")
    assert len(receiver.requests) == 1


async def test_hanging_request_does_not_block_others(
    served: tuple[RecordingReceiver, str],
) -> None:
    """While one request hangs, the receiver answers others, and respond() releases the hung one."""
    receiver, base_url = served
    receiver.hang()
    event = _event("fine_tuning.job.succeeded")
    async with WebhookSink(_config(base_url)) as first, WebhookSink(_config(base_url)) as second:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(first.send, event)
                await receiver.wait_for(1)
                receiver.fail_first(1, 503)
                with pytest.raises(SinkUnavailable) as caught:
                    await second.send(event)
                assert caught.value.status_code == 503
                receiver.respond(204)
    assert len(receiver.requests) == 2


async def test_refused_connection_is_unavailable() -> None:
    """A receiver that is down gives SinkUnavailable naming the sink and failure, not the URL."""
    receiver = RecordingReceiver()
    async with serve_asgi(receiver) as base_url:
        config = _config(base_url)
    error = await _send_error(config, _event("fine_tuning.job.succeeded"))
    assert isinstance(error, SinkUnavailable)
    assert str(error) == "sink 'hooks': the receiver refused the connection"
    assert base_url.rsplit(":", 1)[1] not in str(error)
    # Not chained: a logged traceback must not show the httpx error and its request URL.
    assert error.__cause__ is None
    assert error.__context__ is None


async def test_unused_port_is_unavailable() -> None:
    """A port nothing listens on gives the same clear SinkUnavailable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await _send_error(_config(f"http://127.0.0.1:{port}"), _event("fine_tuning.job.failed"))
    assert isinstance(error, SinkUnavailable)
    assert "refused" in str(error)
    assert "hooks" in str(error)


async def test_dns_failure_is_unavailable() -> None:
    """A host name that does not resolve gives SinkUnavailable saying so (resolver simulated)."""

    def no_such_host(request: httpx.Request) -> httpx.Response:
        # What httpx raises when getaddrinfo fails; simulated so the test stays on loopback.
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError("[Errno -2] Name or service not known") from exc

    config = _config("http://receiver.invalid")
    async with WebhookSink(config, transport=httpx.MockTransport(no_such_host)) as sink:
        with pytest.raises(SinkUnavailable) as caught:
            await sink.send(_event("fine_tuning.job.succeeded"))
    assert str(caught.value) == "sink 'hooks': could not resolve the receiver's host name"


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "s3cr3t-plain-text",
        "sk-proj-abcdef",
        "whsec_=",
        "whsec_not base64!",
        "WHSEC_" + base64.b64encode(b"x" * 24).decode(),
    ],
)
def test_wrong_secret_format_is_explained(secret: str) -> None:
    """A secret that is not whsec_ + base64 is refused with the expected format, not echoed."""
    with pytest.raises(ValidationError) as caught:
        _config("http://127.0.0.1:9", secret=secret)
    message = str(caught.value)
    assert (
        "expected a secret that starts with 'whsec_' followed by base64, "
        "as OpenAI and Standard Webhooks issue" in message
    )
    assert "secret" in message
    assert secret not in message


def test_unpadded_secret_is_accepted() -> None:
    """A whsec_ secret written without base64 padding is accepted, as Standard Webhooks does."""
    config = _config("http://127.0.0.1:9", secret="whsec_" + base64.b64encode(b"abcd1").decode())
    assert config.secret is not None
    unpadded = _config("http://127.0.0.1:9", secret="whsec_YWJjZDE")
    assert unpadded.secret is not None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.com/in", "got 'ftp'"),
        ("file:///etc/passwd", "got 'file'"),
        ("hooks.example.com/in", "got no scheme"),
        ("https:///in", "with a host name"),
        ("http://hooks.example.com:99999/in", "cannot be parsed"),
    ],
)
def test_non_http_url_is_refused(url: str, why: str) -> None:
    """Only http:// and https:// URLs with a host are accepted; the error says what was wrong."""
    with pytest.raises(ValidationError) as caught:
        _config("unused", url=url)
    message = str(caught.value)
    assert "expected an http:// or https:// URL" in message
    assert why in message


def test_reserved_headers_cannot_be_overridden() -> None:
    """An extra header may not replace the signature headers or the content type."""
    with pytest.raises(ValidationError, match="set by the webhook sink itself"):
        _config("http://127.0.0.1:9", headers={"Webhook-Signature": "v1,forged"})
    with pytest.raises(ValidationError, match="line break"):
        _config("http://127.0.0.1:9", headers={"X-Token": "a\r\nInjected: yes"})
    with pytest.raises(ValidationError, match="must be ASCII"):
        _config("http://127.0.0.1:9", headers={"X-Token": "caf\u00e9"})
    with pytest.raises(ValidationError, match="not a valid HTTP header name"):
        _config("http://127.0.0.1:9", headers={"X Token": "a"})


def test_timeout_must_be_positive() -> None:
    """The timeout takes durations like "2s" and refuses zero."""
    assert _config("http://127.0.0.1:9", timeout="2s").timeout == 2.0
    with pytest.raises(ValidationError, match="timeout"):
        _config("http://127.0.0.1:9", timeout=0)


def test_entry_point_finds_the_sink() -> None:
    """The registry finds WebhookSink under the entry point "webhook", with its config model."""
    plugin = sink_plugin("webhook")
    assert plugin.factory is WebhookSink
    assert plugin.config_model is WebhookConfig
    assert plugin.target == "ftwatch_webhook:WebhookSink"


# --- secrets stay secret ------------------------------------------------------------------------


def test_config_and_sink_repr_hide_secrets() -> None:
    """repr, str and JSON dumps of the config and sink show no secret, token or header value."""
    config = _config("http://user:pw-9x@127.0.0.1:9")
    sink = WebhookSink(config)
    for text in (repr(config), str(config), config.model_dump_json(), repr(sink), str(sink)):
        _assert_no_secret(text)
        assert "pw-9x" not in text
    assert "http://127.0.0.1:9/***" in repr(config)
    assert "'Authorization': '***'" in repr(config)
    assert repr(sink) == "<WebhookSink 'hooks' type='webhook' url='http://127.0.0.1:9/***' signed>"


def test_redact_url_keeps_only_the_origin() -> None:
    """redact_url keeps scheme, host and port, and masks everything that may carry a token."""
    assert redact_url("https://hooks.example.com") == "https://hooks.example.com"
    assert redact_url("https://hooks.example.com/") == "https://hooks.example.com"
    assert redact_url("https://u:p@hooks.example.com:8443/T/B/X?k=v") == (
        "https://hooks.example.com:8443/***"
    )
    assert redact_url("http://[::1]:8080/in") == "http://[::1]:8080/***"


async def test_errors_and_logs_hold_no_secret(served: tuple[RecordingReceiver, str]) -> None:
    """Errors (str, repr, args) and structlog output never hold the secret, token or headers."""
    receiver, base_url = served
    event = _event("fine_tuning.job.failed")
    texts: list[str] = []
    with capture_logs() as logs:
        for status in (200, 400, 410, 503):
            receiver.respond(status, f"echo {TOKEN} {HEADER_VALUE}".encode())
            try:
                await _send(_config(base_url), event)
            except SinkError as exc:
                texts += [str(exc), repr(exc), repr(exc.args)]
        receiver.hang()
        try:
            await _send(_config(base_url, timeout="100ms"), event)
        except SinkError as exc:
            texts += [str(exc), repr(exc)]
        receiver.respond(200)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        unused = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with capture_logs() as refused_logs:
        try:
            await _send(_config(unused), event)
        except SinkError as exc:
            texts += [str(exc), repr(exc)]
    assert len(texts) == 13
    assert logs
    assert refused_logs
    for text in [*texts, repr(logs), repr(refused_logs)]:
        _assert_no_secret(text)
        assert "/hooks/ftwatch" not in text


# --- the receiver itself ------------------------------------------------------------------------


async def test_receiver_fail_first_then_respond(served: tuple[RecordingReceiver, str]) -> None:
    """fail_first answers the next n requests with the failure, then the respond() answer."""
    receiver, base_url = served
    receiver.respond(200, b"ok")
    receiver.fail_first(2, status=502)
    async with httpx.AsyncClient() as client:
        answers = [await client.post(f"{base_url}/x", content=b"hi") for _ in range(3)]
    assert [(a.status_code, a.content) for a in answers] == [(502, b""), (502, b""), (200, b"ok")]
    assert [r.body for r in receiver.requests] == [b"hi"] * 3


async def test_receiver_wait_for_wakes_on_arrival(served: tuple[RecordingReceiver, str]) -> None:
    """wait_for(n) returns once the n-th request has been recorded, with all requests so far."""
    receiver, base_url = served
    async with anyio.create_task_group() as tg, httpx.AsyncClient() as client:
        results: list[int] = []

        async def waiter() -> None:
            results.append(len(await receiver.wait_for(2)))

        tg.start_soon(waiter)
        with anyio.fail_after(5):
            await client.post(f"{base_url}/a", content=b"1")
            await client.post(f"{base_url}/b", content=b"2", headers={"X-Dup": "a"})
    assert results == [2]
    assert [r.path for r in receiver.requests] == ["/a", "/b"]
    assert receiver.requests[1].headers["x-dup"] == "a"
