"""Reading a webhook body: bounded in bytes, time and shape, answered with a 4xx that says why.

Every refusal is a `Problem` naming the limit (and the field, for limits inside the JSON).
A refusal made before the client finished sending still reads the rest of the body,
discarding it, up to `DRAIN_FACTOR` times the body limit: a server that closes a socket
with unread data sends a TCP reset, and the reset can destroy the answer before the client
reads it. Past that (or past the body timeout) the answer carries `Connection: close`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from runtime.bounded import BoundsError, parse_json

DRAIN_FACTOR = 8  # bytes read and thrown away, at most, after a refusal: this times the limit
CHARSETS = frozenset({"utf-8", "utf8"})


class Problem(BaseModel):
    error: str
    detail: list[dict[str, str]] = []


def problem(
    status: int,
    error: str,
    detail: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(error=error, detail=detail or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _closing(response: JSONResponse) -> JSONResponse:
    response.headers["Connection"] = "close"
    return response


async def drain_then(request: Request, answer: JSONResponse, max_bytes: int, seconds: float) -> JSONResponse:
    """Discard what is left of the body (bounded), then answer; else answer and close."""
    declared = request.headers.get("content-length")
    budget = DRAIN_FACTOR * max_bytes
    if declared is not None and (not declared.isdigit() or int(declared) > budget):
        return _closing(answer)
    seen = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > budget:
                    return _closing(answer)
    except (TimeoutError, ClientDisconnect):
        return _closing(answer)
    except RuntimeError:  # Starlette's "Stream consumed": the last chunk was already read
        pass
    return answer


async def read_bounded_json(request: Request, *, max_bytes: int, seconds: float) -> Any | JSONResponse:
    """The body parsed within `runtime.bounded`'s limits, or the Problem answer that says why not."""
    body = await read_bounded_body(request, max_bytes=max_bytes, seconds=seconds)
    return body if isinstance(body, JSONResponse) else parse_bounded_json(body)


async def read_bounded_body(request: Request, *, max_bytes: int, seconds: float) -> bytes | JSONResponse:
    """A JSON request's body as sent, within the size and time bounds, or the Problem answer."""
    media, _, params = request.headers.get("content-type", "").partition(";")
    media = media.strip().lower()
    if media != "application/json":
        answer = problem(415, f"content type must be application/json, got {media or 'none'!r}")
        return await drain_then(request, answer, max_bytes, seconds)
    charset = _charset(params)
    if charset is not None and charset not in CHARSETS:
        answer = problem(415, f"content type charset must be utf-8, got {charset[:40]!r}")
        return await drain_then(request, answer, max_bytes, seconds)
    too_large = problem(413, f"body larger than {max_bytes} bytes (the limit)")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        return await drain_then(request, too_large, max_bytes, seconds)
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_bytes:
                    return await drain_then(request, too_large, max_bytes, seconds)
    except TimeoutError:
        return _closing(problem(408, f"body not received within {seconds:g} seconds (the limit)"))
    except ClientDisconnect:
        return _closing(problem(400, "client disconnected before the body was complete"))
    return bytes(body)


def parse_bounded_json(body: bytes) -> Any | JSONResponse:
    """The body parsed within `runtime.bounded`'s limits, or the Problem answer naming the field."""
    try:
        return parse_json(body)
    except BoundsError as exc:
        return problem(
            exc.status,
            f"body refused: {exc}",
            [{"field": exc.field or "(body)", "message": exc.problem}],
        )


def _charset(params: str) -> str | None:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None
