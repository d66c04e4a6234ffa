"""The Anthropic client's HTTP transport, traced: a GenAI client span per Messages API request.

The span hangs under the agent's activity span (runtime.tracing sets up the provider); its
attributes come from a few JSON fields (model, usage, response id), never the prompt, the
answer or a header, so neither alert text nor the API key reach a span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx2  # the anthropic SDK's HTTP library (an httpx fork; objects do not mix with httpx)
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtime.tracing import get_tracer

_MAX_PARSED_BYTES = 4 * 1024 * 1024


class TracedTransport(httpx2.AsyncBaseTransport):
    """An httpx transport that makes each request a GenAI client span.

    Attributes come from a few fields of the JSON (model, usage, response id): never the
    prompt, the answer or any header, so neither alert text nor the API key reach a span.
    """

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        provider: trace.TracerProvider | None = None,
        system: str = "anthropic",
    ) -> None:
        self._inner = inner
        self._provider = provider
        self._system = system

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        operation = "chat" if request.url.path.endswith("/messages") else "request"
        with get_tracer(self._provider).start_as_current_span(
            operation,
            kind=SpanKind.CLIENT,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if not span.is_recording():  # tracing is off: no parsing, no cost
                return await self._inner.handle_async_request(request)
            span.set_attributes(
                {
                    "gen_ai.system": self._system,
                    "gen_ai.operation.name": operation,
                    "http.request.method": request.method,
                    "server.address": request.url.host,
                    "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
                    "url.path": request.url.path,
                }
            )
            model = _json_field(request.content, "model") if request.content else None
            if isinstance(model, str):
                span.update_name(f"{operation} {model}")
                span.set_attribute("gen_ai.request.model", model)
            try:
                response = await self._inner.handle_async_request(request)
            except httpx2.HTTPError as exc:
                # The type only: transport errors can carry the URL.
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.set_attribute("error.type", type(exc).__name__)
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            request_id = response.headers.get("request-id")
            if request_id:
                span.set_attribute("gen_ai.response.id", request_id)
            if response.status_code >= 400:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {response.status_code}"))
                span.set_attribute("error.type", str(response.status_code))
                return response
            if "json" in response.headers.get("content-type", ""):
                # Read here (the client would read it whole anyway: no streaming is used).
                body = await response.aread()
                if len(body) <= _MAX_PARSED_BYTES:
                    _annotate_usage(span, body)
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _json_field(content: bytes, key: str) -> object:
    if len(content) > _MAX_PARSED_BYTES:
        return None
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def _annotate_usage(span: trace.Span, body: bytes) -> None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(data, dict):
        return
    if isinstance(data.get("model"), str):
        span.set_attribute("gen_ai.response.model", data["model"])
    usage = data.get("usage")
    if isinstance(usage, Mapping):
        for source, attribute in (
            ("input_tokens", "gen_ai.usage.input_tokens"),
            ("output_tokens", "gen_ai.usage.output_tokens"),
            ("cache_read_input_tokens", "firebreak.llm.cache_read_tokens"),
            ("cache_creation_input_tokens", "firebreak.llm.cache_write_tokens"),
        ):
            value = usage.get(source)
            if isinstance(value, int):
                span.set_attribute(attribute, value)
    if isinstance(data.get("stop_reason"), str):
        span.set_attribute("gen_ai.response.finish_reasons", [data["stop_reason"]])


def traced_llm_http_client(provider: trace.TracerProvider | None = None, **kwargs: Any) -> httpx2.AsyncClient:
    """The Anthropic client's httpx client, with a span per request.

    Uses the anthropic SDK's own defaults (timeouts, connection limits, redirects).
    """
    import anthropic

    transport = TracedTransport(
        httpx2.AsyncHTTPTransport(limits=anthropic.DEFAULT_CONNECTION_LIMITS), provider
    )
    client: httpx2.AsyncClient = anthropic.DefaultAsyncHttpxClient(transport=transport, **kwargs)
    return client
