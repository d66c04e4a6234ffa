"""Prometheus's HTTP API: the two endpoints diagnosis needs, and the PromQL it asks.

Errors (the telemetry activity turns them into a degraded result, never a failed incident):

    PrometheusError
    ├── PrometheusUnavailable   connection refused, timeout, 5xx
    └── PrometheusQueryError    4xx or status=error: the query itself is wrong
"""

from __future__ import annotations

import re
from typing import Any

import httpx

# PromQL per metric (`<kind>_<stat>`), for the conventions of the common client libraries
# (http_request_duration_seconds histograms, http_requests_total with a `code` label,
# process_* collectors, cAdvisor throttling). $label is the service label, $services a
# regex of the services asked about, $window the rate() range.
DEFAULT_QUERIES: dict[str, str] = {
    "latency_avg": (
        'sum by ($label) (rate(http_request_duration_seconds_sum{$label=~"$services"}[$window]))'
        ' / sum by ($label) (rate(http_request_duration_seconds_count{$label=~"$services"}[$window]))'
    ),
    "latency_p99": (
        "histogram_quantile(0.99, sum by ($label, le) "
        '(rate(http_request_duration_seconds_bucket{$label=~"$services"}[$window])))'
    ),
    "errors_avg": (
        '(sum by ($label) (rate(http_requests_total{$label=~"$services",code=~"5.."}[$window]))'
        ' or 0 * sum by ($label) (rate(http_requests_total{$label=~"$services"}[$window])))'
        ' / sum by ($label) (rate(http_requests_total{$label=~"$services"}[$window]))'
    ),
    "requests_avg": 'sum by ($label) (rate(http_requests_total{$label=~"$services"}[$window]))',
    "availability_avg": 'avg by ($label) (up{$label=~"$services"})',
    "cpu_avg": 'sum by ($label) (rate(process_cpu_seconds_total{$label=~"$services"}[$window]))',
    "memory_max": 'max by ($label) (process_resident_memory_bytes{$label=~"$services"})',
    "saturation_avg": (
        'max by ($label) (rate(container_cpu_cfs_throttled_periods_total{$label=~"$services"}[$window])'
        ' / rate(container_cpu_cfs_periods_total{$label=~"$services"}[$window]))'
    ),
}
PROBE_QUERY = 'up{$label=~"$services"}'


class PrometheusError(Exception):
    pass


class PrometheusUnavailable(PrometheusError):
    pass


class PrometheusQueryError(PrometheusError):
    pass


def public_url(url: str) -> str:
    """The URL without credentials, for logs and results."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


class PrometheusClient:
    """The two endpoints diagnosis needs, with a timeout per request and typed errors."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, timeout_seconds: float) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._timeout = timeout_seconds

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self._base}{path}"
        try:
            response = await self._http.get(url, params=params, timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise PrometheusUnavailable(
                f"timed out after {self._timeout:g}s ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise PrometheusUnavailable(f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise PrometheusUnavailable(f"HTTP {response.status_code}: not a Prometheus API answer") from None
        if response.status_code >= 400 or body.get("status") != "success":
            raise PrometheusQueryError(
                f"HTTP {response.status_code} {body.get('errorType', '')}: {body.get('error', '')}".strip()
            )
        return body.get("data", {})

    async def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        result = data.get("result", [])
        return result if isinstance(result, list) else []

    async def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = await self._get("/api/v1/query_range", params)
        result = data.get("result", [])
        return result if isinstance(result, list) else []


def services_regex(services: list[str]) -> str:
    """An RE2 alternation of the names, escaped for a double-quoted PromQL string."""
    regex = "|".join(re.escape(s) for s in services)
    return regex.replace("\\", "\\\\").replace('"', '\\"')
