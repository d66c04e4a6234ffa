"""OpenTelemetry tracing: one trace per incident, from the webhook to the last playbook.

- The API's HTTP request is a server span (FastAPI instrumentation, `instrument_api`).
- Temporal's `TracingInterceptor` on the API's client puts the span context into the
  signal-with-start's headers; on the worker it continues it: the workflow, every activity
  and every child workflow (the remediation) hang under the webhook's span.
- Every Messages API call is a client span of its own (`agents.transport.TracedTransport`,
  under the agent's activity span), with the model and token usage the API answered.
- `FirebreakInterceptor` puts what an activity decided on its span: for agents the reasoner,
  model, confidence, tokens and cost; for policy the verdict; for playbooks the action,
  result and the credential's accessor (an id, never the token). It also counts the
  Prometheus metrics in `runtime.metrics` from the same results.

Nothing secret and no raw alert text goes on a span: attributes are built here, from
typed results, never from request bodies or headers. The exporter is a setting:
`none` (no provider: tracing costs nothing), `console` or `otlp` (OTLP/HTTP).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Tracer
from temporalio import activity
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from models.agents import AgentResult
from models.incident import RemediationResult
from models.notify import NotifyResult
from models.policy import PolicyDecision
from runtime import metrics
from runtime.settings import Settings

logger = logging.getLogger(__name__)

TRACER_NAME = "firebreak"
Role = Literal["worker", "api"]


def tracer_provider(
    settings: Settings, role: Role, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """The provider the settings ask for, or None when tracing is off.

    `exporter` overrides the configured one (tests pass an in-memory exporter).
    """
    if exporter is None:
        if settings.otel_exporter == "none":
            return None
        exporter = _configured_exporter(settings)
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": f"{settings.otel_service_name}-{role}", "service.namespace": "firebreak"}
        )
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _configured_exporter(settings: Settings) -> SpanExporter:
    if settings.otel_exporter == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otel_endpoint, headers=_headers(settings))


def _headers(settings: Settings) -> dict[str, str]:
    if settings.otel_headers is None:
        return {}
    headers: dict[str, str] = {}
    for item in settings.otel_headers.get_secret_value().split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            # Never echo the value: it is usually a token.
            raise ValueError("FIREBREAK_OTEL_HEADERS must be k=v[,k=v]")
        headers[name.strip()] = value.strip()
    return headers


def install_tracing(settings: Settings, role: Role) -> TracerProvider | None:
    """Set up tracing for this process (worker or API main): the global provider too."""
    provider = tracer_provider(settings, role)
    if provider is not None:
        trace.set_tracer_provider(provider)
        logger.info("tracing to %s", settings.otel_exporter)
    return provider


def tracing_enabled() -> bool:
    """True once a real (SDK) provider is the global one: `install_tracing` ran with an exporter."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def get_tracer(provider: trace.TracerProvider | None = None) -> Tracer:
    return (provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)


def client_interceptors(provider: trace.TracerProvider | None = None) -> list[TracingInterceptor]:
    """Temporal's tracing interceptor for a client (workers on that client inherit it).

    With no provider given, the global one when `install_tracing` set it up; else none at all.
    """
    if provider is None and not tracing_enabled():
        return []
    return [TracingInterceptor(get_tracer(provider))]


def worker_interceptors(
    on_client: Sequence[object],
    provider: trace.TracerProvider | None = None,
    result_types: Mapping[str, type] | None = None,
) -> list[Interceptor]:
    """Firebreak's worker interceptors, plus tracing when the client does not trace already.

    `result_types` (activity name -> result type) is the activity table's, handed in by the
    worker: runtime code does not import the activities.

    Order matters: the tracing interceptor must be outside ours, so that its activity span
    is the current span when `FirebreakInterceptor` annotates it.
    """
    traced = any(isinstance(i, TracingInterceptor) for i in on_client)
    tracing: list[Interceptor] = [] if traced else list(client_interceptors(provider))
    return [*tracing, FirebreakInterceptor(result_types)]


# --- activities: span attributes and metrics from their results ------------------------------


class FirebreakInterceptor(Interceptor):
    """Annotates each activity's span with what it decided and counts it in the metrics.

    What a result says is looked up by the activity's result type, from `result_types` by
    activity name (the activity table's), else from the result itself.
    """

    def __init__(self, result_types: Mapping[str, type] | None = None) -> None:
        self._result_types = dict(result_types or {})

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInterceptor(next, self._result_types)


class _ActivityInterceptor(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, result_types: Mapping[str, type]) -> None:
        super().__init__(next)
        self._result_types = result_types

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        try:
            result = await super().execute_activity(input)
        except Exception as exc:
            error = exc.type if isinstance(exc, ApplicationError) and exc.type else type(exc).__name__
            metrics.ACTIVITY_FAILURES.labels(activity=name, error=error).inc()
            raise
        try:
            kind = self._result_types.get(name, type(result))
            span = trace.get_current_span()
            attributes = describe_result(name, result, kind)
            if attributes:
                span.set_attributes(attributes)
            count_result(name, result, kind)
        except Exception:  # observability never fails an activity
            logger.exception("could not record telemetry for %s", name)
        return result


Attributes = dict[str, str | int | float | bool]


def describe_result(activity_name: str, result: object, kind: type | None = None) -> Attributes:
    """Span attributes for an activity result: decisions and ids, never secrets or alert text."""
    attrs: Attributes = {"firebreak.activity": activity_name}
    family = _family(kind or type(result), result)
    if family is not None:
        attrs.update(_DESCRIBE[family](activity_name, result))
    return attrs


def count_result(activity_name: str, result: object, kind: type | None = None) -> None:
    family = _family(kind or type(result), result)
    if family is not None:
        _COUNT[family](activity_name, result)


def _family(kind: type, result: object) -> type | None:
    """The result family (AgentResult, PolicyDecision, ...) that `kind` belongs to, if any."""
    family = next((base for base in kind.__mro__ if base in _DESCRIBE), None)
    if family is not None and not isinstance(result, family):  # the table and the code disagree
        logger.warning("result of type %s where %s was declared", type(result).__name__, kind.__name__)
        return None
    return family


def _describe_agent(name: str, result: Any) -> Attributes:
    usage = result.usage
    attrs: Attributes = {
        "firebreak.agent": name,
        "firebreak.agent.reasoner": result.reasoner,
        "firebreak.agent.confidence": result.confidence,
        "firebreak.agent.llm_wanted": result.llm_wanted,
        "firebreak.agent.escalated": result.escalate_reason is not None,
        "firebreak.llm.calls": usage.calls,
        "firebreak.llm.cost_usd": usage.cost_usd,
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "firebreak.llm.cache_read_tokens": usage.cache_read_input_tokens,
        "firebreak.llm.cache_write_tokens": usage.cache_creation_input_tokens,
        "firebreak.llm.total_tokens": usage.total_tokens,
    }
    if result.rule:
        attrs["firebreak.agent.rule"] = result.rule
    if result.model:
        attrs["firebreak.agent.model"] = result.model
        attrs["gen_ai.request.model"] = result.model
    if result.redactions:
        attrs["firebreak.llm.redactions"] = sum(result.redactions.values())
    return attrs


def _describe_policy(name: str, result: Any) -> Attributes:
    attrs: Attributes = {"firebreak.policy.verdict": result.verdict.value, "firebreak.policy": result.policy}
    if result.approver_group:
        attrs["firebreak.policy.approver_group"] = result.approver_group
    return attrs


def _describe_remediation(name: str, result: Any) -> Attributes:
    attrs: Attributes = {
        "firebreak.action": result.action,
        "firebreak.action.target": result.target,
        "firebreak.action.status": result.status,
        "firebreak.action.changed": result.changed,
        "firebreak.action.check_mode": result.check_mode,
        "firebreak.action.duration_seconds": result.duration_seconds,
        "firebreak.credential.revoked": result.credential_revoked,
    }
    if result.credential_accessor:
        attrs["firebreak.credential.accessor"] = result.credential_accessor
    return attrs


def _describe_notify(name: str, result: Any) -> Attributes:
    attrs: Attributes = {
        "firebreak.notify.channel": result.channel,
        "firebreak.notify.event": result.event,
        "firebreak.notify.status": result.status,
    }
    if result.ticket:
        attrs["firebreak.notify.ticket"] = result.ticket
    return attrs


def _count_agent(name: str, result: Any) -> None:
    metrics.AGENT_DECISIONS.labels(agent=name, reasoner=result.reasoner).inc()
    for call in result.llm_calls:
        metrics.LLM_CALLS.labels(agent=call.agent, model=call.model, purpose=call.purpose).inc()
        for kind, tokens in (
            ("input", call.input_tokens),
            ("output", call.output_tokens),
            ("cache_read", call.cache_read_input_tokens),
            ("cache_write", call.cache_creation_input_tokens),
        ):
            metrics.LLM_TOKENS.labels(agent=call.agent, model=call.model, kind=kind).inc(tokens)
        metrics.LLM_COST.labels(agent=call.agent, model=call.model).inc(call.cost_usd)


def _count_policy(name: str, result: Any) -> None:
    metrics.POLICY_DECISIONS.labels(verdict=result.verdict.value).inc()


def _count_remediation(name: str, result: Any) -> None:
    mode = "check" if result.check_mode else "live"
    metrics.ACTIONS.labels(action=result.action, result=result.status, mode=mode).inc()
    metrics.ACTION_SECONDS.labels(action=result.action).observe(result.duration_seconds)


def _count_notify(name: str, result: Any) -> None:
    metrics.NOTIFICATIONS.labels(channel=result.channel, event=result.event, result=result.status).inc()


# By result family: what goes on the span, and what is counted.
_DESCRIBE: dict[type, Callable[[str, Any], Attributes]] = {
    AgentResult: _describe_agent,
    PolicyDecision: _describe_policy,
    RemediationResult: _describe_remediation,
    NotifyResult: _describe_notify,
}
_COUNT: dict[type, Callable[[str, Any], None]] = {
    AgentResult: _count_agent,
    PolicyDecision: _count_policy,
    RemediationResult: _count_remediation,
    NotifyResult: _count_notify,
}
