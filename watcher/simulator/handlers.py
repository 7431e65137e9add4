"""The API's handlers that take more than one line: the listings and the create request.

Jobs are listed newest first from a list sorted by ``(created_at, id)``, so a page is a slice
found by bisection and only the jobs on it are rendered. Every listing pages with ``limit`` and
``after`` as OpenAI's do, and can be made endless by a fault.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

from .answers import Answer, BadRequest, json_answer
from .faults import EndlessMode
from .jobs import SimJob

__all__ = ["MAX_LIMIT", "create_arguments", "list_items", "list_jobs"]

T = TypeVar("T")

#: The most items one page may hold.
MAX_LIMIT: Final = 100


def list_jobs(
    jobs: Mapping[str, SimJob],
    order: Sequence[tuple[float, str]],
    visible: int,
    now: float,
    query: Mapping[str, str],
    endless: EndlessMode | None,
) -> Answer:
    """``GET /fine_tuning/jobs``: the first ``visible`` jobs of ``order``, newest first."""
    limit = _limit(query, 20)
    wanted = {k[9:-1]: v for k, v in query.items() if k.startswith("metadata[") and k[-1] == "]"}
    no_metadata = query.get("metadata") == "null"
    after = query.get("after")
    cursor: tuple[float, str] | None = None
    if after:
        job = jobs.get(after)
        if job is None or job.created_at > now:
            raise BadRequest(400, f"Invalid 'after': no job with id {after!r}.", param="after")
        cursor = job.order_key
    if wanted or no_metadata:
        # A filter needs a scan; it is only for tests and small simulated accounts.
        ids = [
            key[1]
            for key in reversed(order[:visible])
            if _metadata_matches(jobs[key[1]].metadata, wanted, no_metadata)
        ]
        start = 0
        if cursor is not None:
            start = next((i for i, j in enumerate(ids) if jobs[j].order_key < cursor), len(ids))
        page, has_more = _paginate(len(ids), start, limit, lambda a, b: ids[a:b], endless)
    else:

        def newest_first(a: int, b: int) -> list[str]:
            return [key[1] for key in reversed(order[max(0, visible - b) : visible - a])]

        start = 0
        if cursor is not None:
            start = visible - bisect.bisect_left(order, cursor)
        page, has_more = _paginate(visible, start, limit, newest_first, endless)
    data = [jobs[job_id].render(now) for job_id in page]
    return json_answer(200, {"object": "list", "data": data, "has_more": has_more})


def list_items(
    items: list[dict[str, Any]],
    query: Mapping[str, str],
    endless: EndlessMode | None,
    *,
    default_limit: int,
) -> Answer:
    """A job's events or checkpoints (``items``, newest first), paged by ``after``."""
    limit = _limit(query, default_limit)
    after = query.get("after")
    start = 0
    if after:
        index = next((i for i, item in enumerate(items) if item["id"] == after), None)
        if index is None:
            raise BadRequest(400, f"Invalid 'after': no item with id {after!r}.", param="after")
        start = index + 1
    page, has_more = _paginate(len(items), start, limit, lambda a, b: items[a:b], endless)
    return json_answer(
        200,
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": has_more,
        },
    )


def create_arguments(body: bytes) -> dict[str, Any]:
    """Check a CreateFineTuningJobRequest body; return the arguments for ``create_job``."""
    try:
        request = json.loads(body or b"null")
    except ValueError:
        raise BadRequest(
            400,
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON "
            "payload.",
            code="invalid_json",
        ) from None
    if not isinstance(request, dict):
        raise BadRequest(400, "The request body must be a JSON object.", code="invalid_json")
    for name in ("model", "training_file"):
        if name not in request:
            raise BadRequest(
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
            raise BadRequest(400, f"Invalid type for '{name}'.", param=name, code="invalid_type")
    suffix = request.get("suffix")
    if suffix is not None and len(suffix) > 64:
        raise BadRequest(
            400, "'suffix' must be at most 64 characters.", param="suffix", code="invalid_value"
        )
    metadata = request.get("metadata")
    if metadata is not None and (
        len(metadata) > 16
        or not all(isinstance(k, str) and len(k) <= 64 for k in metadata)
        or not all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
    ):
        raise BadRequest(
            400,
            "'metadata' takes at most 16 string keys (64 characters) and string values "
            "(512 characters).",
            param="metadata",
            code="invalid_value",
        )
    method = request.get("method")
    if method is not None and method.get("type") not in ("supervised", "dpo", "reinforcement"):
        raise BadRequest(
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
        raise BadRequest(
            400,
            f"Invalid 'limit': expected an integer between 1 and {MAX_LIMIT}.",
            param="limit",
            code="invalid_value",
        )
    return limit


def _metadata_matches(
    metadata: Mapping[str, str] | None, wanted: Mapping[str, str], no_metadata: bool
) -> bool:
    if no_metadata:
        return not metadata
    return metadata is not None and all(metadata.get(k) == v for k, v in wanted.items())
