"""A Discord-like webhook receiver for the Discord sink's tests, served on a real socket.

It answers as Discord's "Execute Webhook" does: ``401`` for a wrong token, ``404`` for an
unknown webhook id, ``400 Invalid Form Body`` (code 50035, with ``errors`` naming the field) for
a message that breaks one of Discord's embed limits, ``204`` without ``?wait=true`` and ``200``
with the created message (its ``id`` a snowflake) with it. A test may queue its own answers in
``script``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

WEBHOOK_ID = "112233445566778899"
TOKEN = "dIsCoRdToKeN-hunter2_sekrit-0123456789abcdefABCDEF"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Discord's embed limits (https://discord.com/developers/docs/resources/message#embed-limits).
LIMITS = {
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field.name": 256,
    "field.value": 1024,
    "footer.text": 2048,
    "author.name": 256,
    "total": 6000,
}


def limit_errors(message: Any) -> list[tuple[str, str]]:
    """Every way ``message`` breaks Discord's rules for a webhook message: (field path, why)."""
    errors: list[tuple[str, str]] = []
    if not isinstance(message, dict):
        return [("", "not a JSON object")]
    embeds = message.get("embeds")
    if not isinstance(embeds, list) or not 1 <= len(embeds) <= 10:
        return [("embeds", "1 to 10 embeds expected")]
    if message.get("allowed_mentions") != {"parse": []}:
        errors.append(("allowed_mentions", "mentions must be off"))
    for i, embed in enumerate(embeds):
        where = f"embeds.{i}"

        def check(path: str, text: object, limit: int, where: str = where) -> int:
            if not isinstance(text, str) or not text.strip():
                errors.append((f"{where}.{path}", "Must be 1 or more in length."))
                return 0
            if len(text) > limit:
                errors.append((f"{where}.{path}", f"Must be {limit} or fewer in length."))
            return len(text)

        total = check("title", embed.get("title"), LIMITS["title"])
        total += check("description", embed.get("description"), LIMITS["description"])
        total += check("footer.text", embed.get("footer", {}).get("text"), LIMITS["footer.text"])
        total += check("author.name", embed.get("author", {}).get("name"), LIMITS["author.name"])
        fields = embed.get("fields", [])
        if len(fields) > LIMITS["fields"]:
            errors.append((f"{where}.fields", "Must be 25 or fewer in length."))
        for j, item in enumerate(fields):
            total += check(f"fields.{j}.name", item.get("name"), LIMITS["field.name"])
            total += check(f"fields.{j}.value", item.get("value"), LIMITS["field.value"])
            if not isinstance(item.get("inline"), bool):
                errors.append((f"{where}.fields.{j}.inline", "Must be a boolean."))
        if total > LIMITS["total"]:
            errors.append((where, "Embed size exceeds maximum size of 6000"))
        if not isinstance(embed.get("color"), int) or not 0 <= embed["color"] <= 0xFFFFFF:
            errors.append((f"{where}.color", "Must be an integer colour."))
    return errors


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class DiscordLike:
    """An ASGI app answering webhook executions at ``/api/webhooks/<id>/<token>`` like Discord."""

    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    next_id: int = 1_300_000_000_000_000_000

    def reset(self) -> None:
        """Forget what was received and any scripted answer."""
        self.received.clear()
        self.script.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record the request, then answer it."""
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode())
        try:
            body = json.loads(b"".join(chunks))
        except ValueError:
            body = None
        self.received.append(Received(scope["path"], query, headers, body))
        if self.script:
            status, extra, answer = self.script.pop(0)
        else:
            status, extra, answer = self._answer(scope["path"], query, body)
        extra = {"content-type": "application/json", **extra}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in extra.items()],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _answer(
        self, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, dict[str, str], bytes]:
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["api", "webhooks"] or parts[2] != WEBHOOK_ID:
            return 404, {}, b'{"message": "Unknown Webhook", "code": 10015}'
        if parts[3] != TOKEN:
            return 401, {}, b'{"message": "Invalid Webhook Token", "code": 50027}'
        errors = limit_errors(body)
        if errors:
            details: dict[str, Any] = {}
            for where, why in errors:
                node = details
                for key in where.split("."):
                    node = node.setdefault(key, {})
                node["_errors"] = [{"code": "BASE_TYPE_MAX_LENGTH", "message": why}]
            answer = {"message": "Invalid Form Body", "code": 50035, "errors": details}
            return 400, {}, json.dumps(answer).encode()
        if query.get("wait") != ["true"]:
            return 204, {}, b""
        self.next_id += 1
        created = {
            "id": str(self.next_id),
            "type": 0,
            "channel_id": "998877665544332211",
            "webhook_id": WEBHOOK_ID,
            "content": "",
            "embeds": body["embeds"],
            "mentions": [],
        }
        return 200, {}, json.dumps(created).encode()
