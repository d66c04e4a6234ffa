"""Alert webhooks -> Temporal. This API does nothing else.

Each payload is validated whole into `Alert`s, grouped by incident key and delivered with
signal-with-start to `incident-<key>`. The answer is 202 only once Temporal accepted every
group; if Temporal cannot be reached it is 503 with Retry-After, so Alertmanager retries
and nothing is lost (a retried delivery is deduplicated by fingerprint in the workflow).

With `FIREBREAK_API_ACK=bus` the validated body is stored on the alert bus instead and 202
means JetStream holds it; the bus consumer delivers it to the incident as above. A storm
then costs the sender one broker round trip per request, not a Temporal RPC.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry.trace import TracerProvider
from pydantic import BaseModel, ValidationError

from api.approvals import ApproverTokensError, add_approval_routes
from api.body import Problem, drain_then, parse_bounded_json, problem, read_bounded_body
from ingest.bus import BusPublisher, check_settings
from ingest.coalescer import Coalescer, Overloaded, Unavailable
from ingest.delivery import DELIVERY_TIMEOUT, ClientFactory, TemporalGateway, signal_with_start
from ingest.parsing import GENERIC, field_errors, parse_generic, refusal_text
from models.alert import Alert, AlertBatch, AlertmanagerPayload
from models.constants import (
    incident_workflow_id,
)
from policies.seals import SealError
from runtime import metrics
from runtime.settings import Settings

logger = logging.getLogger("firebreak.api")

RETRY_AFTER_SECONDS = "5"
# Request bodies are documented by hand (the handlers read raw JSON to answer with our own
# errors); their nested models go to components/schemas, where OpenAPI resolves `$ref`s.
_COMPONENT_REF = "#/components/schemas/{model}"
_ALERTMANAGER_SCHEMA = AlertmanagerPayload.model_json_schema(by_alias=True, ref_template=_COMPONENT_REF)
_GENERIC_SCHEMA = GENERIC.json_schema(ref_template=_COMPONENT_REF)
_BODY_COMPONENTS = {**_ALERTMANAGER_SCHEMA.pop("$defs", {}), **_GENERIC_SCHEMA.pop("$defs", {})}


class ConfigurationError(RuntimeError):
    pass


class Accepted(BaseModel):
    accepted: int
    incidents: list[str]


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "not JSON, or past a bound; `detail` names the field"},
    408: {"model": Problem, "description": "body not received in time"},
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    413: {"model": Problem, "description": "body too large, or too many alerts or members"},
    415: {"model": Problem, "description": "not application/json"},
    422: {"model": Problem, "description": "invalid payload; `detail` names each field"},
    429: {"model": Problem, "description": "too many alerts waiting", "headers": _RETRY_AFTER},
    503: {"model": Problem, "description": "Temporal unavailable", "headers": _RETRY_AFTER},
}


def _webhook_route(body_schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI description of a webhook route: 202 with `Accepted`, the problems, its body."""
    return {
        "status_code": 202,
        "response_model": Accepted,
        "responses": PROBLEMS,
        "openapi_extra": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}
        },
    }


def bearer_matches(request: Request, expected: str) -> bool:
    """Whether the request carries `Authorization: Bearer <expected>` (constant-time compare)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and secrets.compare_digest(token.strip(), expected)


def create_app(
    settings: Settings,
    client_factory: ClientFactory,
    *,
    tracer_provider: TracerProvider | None = None,
    temporal_metrics_url: str | None = None,
) -> FastAPI:
    """The webhook API.

    `tracer_provider`: each request is a server span, the parent of the incident's trace
    (default: the global provider, when `runtime.tracing.install_tracing` set one up).
    `temporal_metrics_url`: the Temporal runtime's own metrics page, re-exported on /metrics.
    """
    if settings.api_token is None and not settings.api_auth_disabled:
        raise ConfigurationError(
            "FIREBREAK_API_TOKEN is not set; set it, or FIREBREAK_API_AUTH_DISABLED=true "
            "for a local experiment"
        )
    gateway = TemporalGateway(client_factory)
    bus: BusPublisher | None = None
    if settings.api_ack == "bus":
        try:
            check_settings(settings)
        except RuntimeError as exc:
            raise ConfigurationError(f"FIREBREAK_API_ACK=bus: {exc}") from None
        bus = BusPublisher(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        detail = (await gateway.reachable())[1]
        logger.info("Temporal %s", detail)
        if bus is not None:
            logger.info("alert bus %s: a webhook's 202 means the bus stored it", (await bus.reachable())[1])
        yield
        if bus is not None:
            await bus.close()
        # Shutdown: what is already queued still goes out before the server stops.
        ingest: Coalescer | None = getattr(app.state, "coalescer", None)
        if ingest is not None:
            await ingest.drain()
            logger.info("ingest totals: %s", ingest.stats)

    app = FastAPI(
        title="Firebreak alert ingress",
        version="0.1.0",
        lifespan=lifespan,
        description="Alert webhooks that open and update Firebreak incidents.",
    )
    app.state.gateway = gateway
    app.state.bus = bus  # None unless FIREBREAK_API_ACK=bus
    _document_bodies(app)
    _instrument(app, settings, gateway, tracer_provider, temporal_metrics_url)
    try:
        add_approval_routes(app, settings, gateway.client)
    except (ApproverTokensError, SealError) as exc:
        raise ConfigurationError(str(exc)) from None

    def unauthorized(request: Request) -> JSONResponse | None:
        if settings.api_auth_disabled:
            return None
        expected = settings.api_token.get_secret_value() if settings.api_token else ""
        if not bearer_matches(request, expected):
            return problem(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
        return None

    async def refuse_unauthorized(request: Request) -> JSONResponse | None:
        if (denied := unauthorized(request)) is None:
            return None
        # Read what the client is still sending, so it hears the 401 instead of a reset.
        return await drain_then(
            request, denied, settings.api_max_body_bytes, settings.api_body_timeout_seconds
        )

    async def read_body(request: Request) -> bytes | JSONResponse:
        """The body as sent, or the 4xx that says why not (see `api.body`)."""
        return await read_bounded_body(
            request,
            max_bytes=settings.api_max_body_bytes,
            seconds=settings.api_body_timeout_seconds,
        )

    async def send_batch(key: str, batch: AlertBatch) -> None:
        async with asyncio.timeout(DELIVERY_TIMEOUT):
            client = await gateway.client()
            await signal_with_start(client, settings, key, batch)

    def coalescer() -> Coalescer:
        # Created on first use: it needs the server's running event loop.
        if getattr(app.state, "coalescer", None) is None:
            app.state.coalescer = Coalescer(
                send_batch,
                max_delay=settings.ingest_max_delay_ms / 1000,
                max_batch=settings.ingest_max_batch,
                max_pending=settings.ingest_max_pending,
            )
        ingest: Coalescer = app.state.coalescer
        return ingest

    async def accept(alerts: list[Alert], source: str, body: bytes) -> list[str]:
        """Hand the alerts on; return their incident keys once they are durable (or raise)."""
        if bus is None:
            return await coalescer().submit(alerts)
        # The body as sent: the consumer validates it again, as it does every bus message.
        await bus.publish(source, body)
        return sorted({alert.incident_key() for alert in alerts})

    async def deliver(alerts: list[Alert], source: str, body: bytes) -> JSONResponse:
        try:
            keys = await accept(alerts, source, body)
        except Overloaded as exc:
            return problem(
                429, "too many alerts waiting; retry later", headers={"Retry-After": str(exc.retry_after)}
            )
        except Unavailable:
            return problem(
                503,
                f"{'the alert bus' if bus is not None else 'Temporal'} is unavailable; retry later",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        incidents = [incident_workflow_id(k) for k in keys]
        for alert in alerts:
            metrics.ALERTS_RECEIVED.labels(source=source, status=alert.status.value).inc()
        logger.debug("accepted %d alert(s) into %s", len(alerts), ", ".join(incidents))
        return JSONResponse(Accepted(accepted=len(alerts), incidents=incidents).model_dump(), status_code=202)

    async def receive(request: Request, source: str, parse: Callable[[Any], list[Alert]]) -> JSONResponse:
        """What both webhooks do: authenticate, read the body, parse it into alerts, deliver them."""
        if (denied := await refuse_unauthorized(request)) is not None:
            return denied
        body = await read_body(request)
        if isinstance(body, JSONResponse):
            return body
        raw = parse_bounded_json(body)
        if isinstance(raw, JSONResponse):
            return raw
        try:
            alerts = parse(raw)
        except ValidationError as exc:
            return invalid(exc)
        except ValueError as exc:
            return problem(422, str(exc))
        return await deliver(alerts, source, body)

    @app.post("/alerts/alertmanager", **_webhook_route(_ALERTMANAGER_SCHEMA))
    async def alertmanager(request: Request) -> JSONResponse:
        """Alertmanager webhook receiver (payload version 4)."""
        return await receive(
            request, "alertmanager", lambda raw: AlertmanagerPayload.model_validate(raw).to_alerts()
        )

    @app.post("/alerts/generic", **_webhook_route(_GENERIC_SCHEMA))
    async def generic(request: Request) -> JSONResponse:
        """One generic JSON alert, or a list of them."""
        return await receive(request, "generic", lambda raw: parse_generic(raw, datetime.now(UTC)))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Is the API up, and can it reach Temporal (and the alert bus, when it acks there)?"""
        ok, detail = await gateway.reachable()
        answer = {"temporal": detail}
        if bus is not None:
            bus_ok, answer["bus"] = await bus.reachable()
            ok = ok and bus_ok
        return JSONResponse({"status": "ok" if ok else "degraded", **answer}, status_code=200 if ok else 503)

    return app


def _instrument(
    app: FastAPI,
    settings: Settings,
    gateway: TemporalGateway,
    tracer_provider: TracerProvider | None,
    temporal_metrics_url: str | None,
) -> None:
    """Traces (a server span per request) and Prometheus metrics on /metrics."""
    from runtime.tracing import tracing_enabled

    if tracer_provider is not None or tracing_enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=tracer_provider,
            excluded_urls="healthz,metrics",
            exclude_spans=["receive", "send"],
        )
    if not settings.metrics_enabled:
        return
    app.add_middleware(metrics.WebhookMetrics, sources=("alertmanager", "generic"))
    registry = metrics.registry_with_temporal(temporal_metrics_url)
    counts = metrics.IncidentCounts(settings.metrics_incident_refresh_seconds)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        """Prometheus metrics: webhooks, incidents by phase/outcome, Temporal's client."""
        token = settings.metrics_token
        if token is not None and not bearer_matches(request, token.get_secret_value()):
            return problem(
                401, "missing or wrong metrics bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        await counts.refresh_if_stale(gateway.client)
        return Response(await metrics.exposition(registry), media_type=metrics.CONTENT_TYPE_LATEST)


def _document_bodies(app: FastAPI) -> None:
    """Add the request bodies' nested models to the generated OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in _BODY_COMPONENTS.items():
                schemas.setdefault(name, definition)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def invalid(exc: ValidationError) -> JSONResponse:
    detail = field_errors(exc)
    return problem(422, refusal_text(detail), detail)
