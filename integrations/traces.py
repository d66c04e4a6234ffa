"""Trace sources for diagnosis: Jaeger's and Grafana Tempo's HTTP query APIs -> `models.rca.Span`.

Both fetch the traces that touched the incident's services in a time range; the telemetry
activity aggregates them with `rca.spans.aggregate_spans` (the same code the dataset
converter uses). A source that is down, slow or answers nonsense raises `TraceSourceError`,
which the activity turns into a `partial` result with the reason, never a failed incident.

- Jaeger: `GET /api/traces?service=S&start=<us>&end=<us>&limit=N` (the query service's JSON
  API, as its UI uses it): `{"data": [{"traceID", "spans": [{"spanID", "references":
  [{"refType": "CHILD_OF", "spanID"}], "startTime" (us), "duration" (us), "processID",
  "tags": [{"key": "error", "value": true}]}], "processes": {"p1": {"serviceName"}}}]}`.
- Tempo: `GET /api/search?tags=service.name=S&start=<s>&end=<s>&limit=N` -> `{"traces":
  [{"traceID"}]}`, then `GET /api/traces/<id>` -> OTLP JSON `{"batches": [{"resource":
  {"attributes": [{"key": "service.name", "value": {"stringValue"}}]}, "scopeSpans":
  [{"spans": [{"spanId", "parentSpanId", "startTimeUnixNano", "endTimeUnixNano",
  "status": {"code"}}]}]}]}` (ids are opaque strings here: only equality matters).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from models.rca import Span

MAX_TRACES = 500  # per service and window: enough for percentiles, bounded for memory
FETCH_CONCURRENCY = 8  # Tempo: trace fetches in flight at once, so a search does not flood the store


class TraceSourceError(Exception):
    """The trace store did not answer usefully; the message says why (no credentials in it)."""


class TraceSource(Protocol):
    name: str

    async def spans(self, services: Sequence[str], start: float, end: float) -> list[Span]: ...


async def _get_json(http: httpx.AsyncClient, url: str, params: dict[str, str], seconds: float) -> Any:
    try:
        response = await http.get(url, params=params, timeout=seconds)
    except httpx.TimeoutException:
        raise TraceSourceError(f"timed out after {seconds:g}s") from None
    except httpx.HTTPError as exc:
        raise TraceSourceError(f"{type(exc).__name__}") from None
    if response.status_code >= 400:
        raise TraceSourceError(f"HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise TraceSourceError(f"HTTP {response.status_code}: not JSON") from None


class JaegerSource:
    name = "jaeger"

    def __init__(self, http: httpx.AsyncClient, base_url: str, timeout_seconds: float = 10.0) -> None:
        self._http, self._base, self._timeout = http, base_url.rstrip("/"), timeout_seconds

    async def spans(self, services: Sequence[str], start: float, end: float) -> list[Span]:
        bodies = await asyncio.gather(
            *(
                _get_json(
                    self._http,
                    f"{self._base}/api/traces",
                    {
                        "service": s,
                        "start": str(int(start * 1e6)),
                        "end": str(int(end * 1e6)),
                        "limit": str(MAX_TRACES),
                    },
                    self._timeout,
                )
                for s in services
            )
        )
        seen: dict[tuple[str, str], Span] = {}
        for body in bodies:
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise TraceSourceError("answer has no data list: not the Jaeger query API")
            for trace in data:
                for span in _jaeger_spans(trace):
                    seen[(span.trace_id, span.span_id)] = span  # a trace can come back per service
        return list(seen.values())


def _jaeger_spans(trace: Any) -> list[Span]:
    if not isinstance(trace, dict):
        return []
    processes = trace.get("processes") or {}
    out: list[Span] = []
    for raw in trace.get("spans") or []:
        try:
            parent = next(
                (r["spanID"] for r in raw.get("references") or [] if r.get("refType") == "CHILD_OF"), ""
            )
            service = str((processes.get(raw["processID"]) or {}).get("serviceName", ""))
            start_us, duration_us = int(raw["startTime"]), int(raw["duration"])
        except (KeyError, TypeError, ValueError):
            continue
        tags = {t.get("key"): t.get("value") for t in raw.get("tags") or [] if isinstance(t, dict)}
        out.append(
            Span(
                trace_id=str(raw.get("traceID") or trace.get("traceID", "")),
                span_id=str(raw.get("spanID", "")),
                parent_id=str(parent),
                service=service,
                start_ns=start_us * 1000,
                end_ns=(start_us + duration_us) * 1000,
                error=tags.get("error") in (True, "true"),
            )
        )
    return out


class TempoSource:
    name = "tempo"

    def __init__(self, http: httpx.AsyncClient, base_url: str, timeout_seconds: float = 10.0) -> None:
        self._http, self._base, self._timeout = http, base_url.rstrip("/"), timeout_seconds

    async def spans(self, services: Sequence[str], start: float, end: float) -> list[Span]:
        found = await asyncio.gather(
            *(
                _get_json(
                    self._http,
                    f"{self._base}/api/search",
                    {
                        "tags": f"service.name={s}",
                        "start": str(int(start)),
                        "end": str(int(end) + 1),
                        "limit": str(MAX_TRACES),
                    },
                    self._timeout,
                )
                for s in services
            )
        )
        ids: list[str] = []
        for body in found:
            traces = body.get("traces") if isinstance(body, dict) else None
            if not isinstance(traces, list):
                raise TraceSourceError("search answer has no traces list: not the Tempo API")
            ids += [str(t["traceID"]) for t in traces if isinstance(t, dict) and t.get("traceID")]
        unique = list(dict.fromkeys(ids))[:MAX_TRACES]
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def fetch(tid: str) -> Any:
            async with gate:
                return await _get_json(self._http, f"{self._base}/api/traces/{tid}", {}, self._timeout)

        bodies = await asyncio.gather(*(fetch(tid) for tid in unique))
        out: list[Span] = []
        for tid, body in zip(unique, bodies, strict=True):
            out += _otlp_spans(tid, body)
        return out


def _otlp_spans(trace_id: str, body: Any) -> list[Span]:
    batches = (body.get("batches") or body.get("resourceSpans") or []) if isinstance(body, dict) else []
    out: list[Span] = []
    for batch in batches:
        attrs = {
            a.get("key"): (a.get("value") or {}).get("stringValue")
            for a in (batch.get("resource") or {}).get("attributes") or []
            if isinstance(a, dict)
        }
        service = str(attrs.get("service.name") or "")
        for scope in batch.get("scopeSpans") or batch.get("instrumentationLibrarySpans") or []:
            for raw in scope.get("spans") or []:
                try:
                    start, end = int(raw["startTimeUnixNano"]), int(raw["endTimeUnixNano"])
                except (KeyError, TypeError, ValueError):
                    continue
                code = (raw.get("status") or {}).get("code")
                out.append(
                    Span(
                        trace_id=trace_id,
                        span_id=str(raw.get("spanId", "")),
                        parent_id=str(raw.get("parentSpanId") or ""),
                        service=service,
                        start_ns=start,
                        end_ns=end,
                        error=code in (2, "STATUS_CODE_ERROR"),
                    )
                )
    return out
