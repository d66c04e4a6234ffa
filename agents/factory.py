"""Build the agents' reasoner from the settings: the worker, the agent evals and the benchmarks share it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import TracerProvider

from agents.budget import GlobalBudget, IncidentCaps, Pricing
from agents.hybrid import HybridReasoner
from agents.redact import Redactor
from models.catalog import Catalog
from runtime.settings import Settings

if TYPE_CHECKING:
    from agents.claude import ClaudeReasoner


def build_reasoner(
    settings: Settings, catalog: Catalog, *, tracer_provider: TracerProvider | None = None
) -> HybridReasoner:
    """Rules always; Claude too when a key is configured and the LLM is enabled.

    Each Messages API request is a span (agents.transport.TracedTransport) of the
    given tracer provider, or of the global one.
    """
    llm: ClaudeReasoner | None = None
    disabled = "no LLM configured (FIREBREAK_ANTHROPIC_API_KEY unset)"
    if not settings.llm_enabled:
        disabled = "LLM disabled (FIREBREAK_LLM_ENABLED=false)"
    elif settings.anthropic_api_key is not None:
        # Imported here: the SDK costs a worker ~1.8 s of start-up and its memory, and a
        # worker without an LLM key never needs it.
        import anthropic

        from agents.claude import ClaudeReasoner
        from agents.transport import traced_llm_http_client

        client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.llm_base_url,
            max_retries=0,  # Temporal owns retries
            timeout=settings.llm_timeout_seconds,
            http_client=traced_llm_http_client(tracer_provider),
        )
        llm = ClaudeReasoner(
            client,
            model=settings.llm_model,
            max_tokens=settings.llm_max_tokens,
            pricing=Pricing(
                input_per_mtok=settings.llm_price_input_per_mtok,
                output_per_mtok=settings.llm_price_output_per_mtok,
                cache_write_per_mtok=settings.llm_price_cache_write_per_mtok,
                cache_read_per_mtok=settings.llm_price_cache_read_per_mtok,
            ),
            catalog=catalog,
        )
    return HybridReasoner(
        llm,
        threshold=settings.llm_confidence_threshold,
        redactor=Redactor(emails=settings.llm_redact_emails, ips=settings.llm_redact_ips),
        incident_caps=IncidentCaps(
            tokens=settings.llm_incident_token_cap, cost_usd=settings.llm_incident_cost_cap_usd
        ),
        # Process-wide: one budget per worker (see activities.agents).
        budget=GlobalBudget(
            requests_per_minute=settings.llm_global_requests_per_minute,
            spend_cap_usd=settings.llm_global_spend_cap_usd,
            window_seconds=settings.llm_global_spend_window_seconds,
        ),
        disabled_reason=disabled,
    )
