"""Log sources for diagnosis: Grafana Loki (`query_range`, LogQL) and Elasticsearch/OpenSearch
(`_search`) -> `models.rca.LogLine`.

The telemetry activity mines the lines into Drain templates with `rca.logmining` (the same
code the dataset converter uses). A source that is down, slow or answers nonsense raises
`LogSourceError`; the activity records it and goes on with what it has.

- Loki: `GET /loki/api/v1/query_range?query={<label>=~"a|b"}&start=<ns>&end=<ns>&limit=N&
  direction=forward` -> `{"status": "success", "data": {"resultType": "streams", "result":
  [{"stream": {<label>: "a", ...}, "values": [["<ns>", "<line>"], ...]}]}}`.
- Elasticsearch/OpenSearch: `POST /<index>/_search` with a bool filter (a `range` on the time
  field, `terms` on the service field) -> `{"hits": {"hits": [{"_source": {<time>: ISO or
  epoch ms, <service>: "a", <message>: "..."}}]}}`.

Service names reach LogQL only as an escaped regex alternation inside a quoted string, and
Elasticsearch only as JSON values: alert text never becomes query syntax.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import httpx

from models.rca import LogLine

MAX_LINES = 5000  # per window: enough to mine templates, bounded for memory
TRACE_KEY = (
    "trace_id"  # OpenTelemetry's log attribute for the trace a line belongs to (pairs in rca.logmining)
)
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class LogSourceError(Exception):
    """The log store did not answer usefully; the message says why (no credentials in it)."""


class LogSource(Protocol):
    name: str

    async def lines(self, services: Sequence[str], start: float, end: float) -> list[LogLine]: ...


async def _send(http: httpx.AsyncClient, request: httpx.Request, seconds: float) -> Any:
    try:
        response = await http.send(request)
    except httpx.TimeoutException:
        raise LogSourceError(f"timed out after {seconds:g}s") from None
    except httpx.HTTPError as exc:
        raise LogSourceError(f"{type(exc).__name__}") from None
    if response.status_code >= 400:
        raise LogSourceError(f"HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise LogSourceError(f"HTTP {response.status_code}: not JSON") from None


def logql_selector(label: str, services: Sequence[str]) -> str:
    """`{label=~"a|b"}` with every name regex-escaped and string-escaped."""
    if not _LABEL.match(label):
        raise ValueError(f"loki service label {label!r} is not a label name")
    regex = "|".join(re.escape(s) for s in services)
    return "{" + label + '=~"' + regex.replace("\\", "\\\\").replace('"', '\\"') + '"}'


class LokiSource:
    name = "loki"

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        timeout_seconds: float = 10.0,
        service_label: str = "service",
    ) -> None:
        self._http, self._base, self._timeout = http, base_url.rstrip("/"), timeout_seconds
        self._label = service_label
        logql_selector(service_label, ["x"])  # refuse a bad label at construction, not per incident

    async def lines(self, services: Sequence[str], start: float, end: float) -> list[LogLine]:
        params = {
            "query": logql_selector(self._label, services),
            "start": str(int(start * 1e9)),
            "end": str(int(end * 1e9)),
            "limit": str(MAX_LINES),
            "direction": "forward",
        }
        request = self._http.build_request(
            "GET", f"{self._base}/loki/api/v1/query_range", params=params, timeout=self._timeout
        )
        body = await _send(self._http, request, self._timeout)
        data = body.get("data") if isinstance(body, dict) else None
        if (
            not isinstance(data, dict)
            or body.get("status") != "success"
            or data.get("resultType") != "streams"
        ):
            raise LogSourceError("answer is not a Loki streams result")
        out: list[LogLine] = []
        for stream in data.get("result") or []:
            labels = stream.get("stream") or {}
            service = str(labels.get(self._label, ""))
            # Loki 3 returns structured metadata (where OpenTelemetry logs keep `trace_id`)
            # among the stream's labels, or per line when labels are categorised.
            stream_trace = str(labels.get(TRACE_KEY, ""))
            for pair in stream.get("values") or []:
                try:
                    extra = pair[2] if len(pair) > 2 and isinstance(pair[2], dict) else {}
                    meta = extra.get("structuredMetadata") or {}
                    trace = str(meta.get(TRACE_KEY, "")) if isinstance(meta, dict) else ""
                    line = LogLine(int(pair[0]) / 1e9, service, str(pair[1]), trace_id=trace or stream_trace)
                except (IndexError, TypeError, ValueError):
                    continue
                out.append(line)
        return out


class ElasticsearchSource:
    """Elasticsearch or OpenSearch: the `_search` API is the same for this query."""

    name = "opensearch"

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        index: str = "logs-*",
        timeout_seconds: float = 10.0,
        service_field: str = "service",
        time_field: str = "@timestamp",
        message_field: str = "message",
        trace_field: str = TRACE_KEY,
    ) -> None:
        self._http, self._base, self._timeout = http, base_url.rstrip("/"), timeout_seconds
        self._index, self._service, self._time, self._message = (
            index,
            service_field,
            time_field,
            message_field,
        )
        self._trace = trace_field

    async def lines(self, services: Sequence[str], start: float, end: float) -> list[LogLine]:
        query = {
            "size": MAX_LINES,
            "sort": [{self._time: "asc"}],
            "_source": [self._time, self._service, self._message, self._trace],
            "query": {
                "bool": {
                    "filter": [
                        {
                            "range": {
                                self._time: {
                                    "gte": int(start * 1000),
                                    "lte": int(end * 1000),
                                    "format": "epoch_millis",
                                }
                            }
                        },
                        {"terms": {self._service: list(services)}},
                    ]
                }
            },
        }
        request = self._http.build_request(
            "POST", f"{self._base}/{self._index}/_search", json=query, timeout=self._timeout
        )
        body = await _send(self._http, request, self._timeout)
        hits = (body.get("hits") or {}).get("hits") if isinstance(body, dict) else None
        if not isinstance(hits, list):
            raise LogSourceError("answer has no hits.hits: not the _search API")
        out: list[LogLine] = []
        for hit in hits:
            source = hit.get("_source") or {} if isinstance(hit, dict) else {}
            ts = _epoch(source.get(self._time))
            if ts is None:
                continue
            service, text = str(source.get(self._service, "")), str(source.get(self._message, ""))
            out.append(LogLine(ts, service, text, trace_id=str(source.get(self._trace) or "")))
        return out


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value) / 1000.0  # epoch_millis
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None
