"""Spans -> per-window, per caller->callee trace statistics (`rca.signals.TraceStat`).

Runtime and tooling share this: the live trace sources (Jaeger, Tempo) and the dataset
converter (tools/nezha_convert.py) both hand their spans here, so a scenario and a live
incident are aggregated the same way.

A service *invocation* is a span whose parent belongs to another service (or none). Its
latency is the span's duration; its *self time* is that minus the union of the intervals in
which it waited on other services (the client span around each call when there is one, so
network time is not counted as its own); its *gap* on the edge from its caller is the
caller's client span minus the invocation (the network and queueing between the two).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from models.rca import Span
from rca.signals import TraceStat

WINDOW_SECONDS = 30


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def aggregate_spans(spans: Iterable[Span], window_seconds: int = WINDOW_SECONDS) -> list[TraceStat]:
    by_trace: dict[str, dict[str, Span]] = defaultdict(dict)
    for span in spans:
        span.children = []
        by_trace[span.trace_id][span.span_id] = span
    # (window, caller, callee) -> latencies, self times, gaps (seconds), errors (None: unknown)
    cells: dict[tuple[int, str, str], tuple[list[float], list[float], list[float], list[bool]]] = defaultdict(
        lambda: ([], [], [], [])
    )
    for trace in by_trace.values():
        for span in trace.values():
            parent = trace.get(span.parent_id)
            if parent is not None:
                parent.children.append(span)
        for span in trace.values():
            parent = trace.get(span.parent_id)
            if parent is not None and parent.service == span.service:
                continue  # inside an invocation
            caller = parent.service if parent is not None else ""
            busy = _union(_waiting(span, trace), span.start_ns, span.end_ns)
            duration = max(0, span.end_ns - span.start_ns)
            window = int(span.start_ns // 1_000_000_000 // window_seconds * window_seconds)
            lat, own, gaps, errors = cells[(window, caller, span.service)]
            lat.append(duration / 1e9)
            own.append(max(0, duration - busy) / 1e9)
            if span.error is not None:
                errors.append(span.error)
            if parent is not None and _is_client(parent, trace):
                gaps.append(max(0, (parent.end_ns - parent.start_ns) - duration) / 1e9)
    return [
        TraceStat(
            timestamp=float(window),
            caller=caller,
            callee=callee,
            calls=len(lat),
            errors=sum(errors) if errors else None,
            latency_p50=percentile(lat, 0.5),
            latency_p90=percentile(lat, 0.9),
            latency_p99=percentile(lat, 0.99),
            self_p50=percentile(own, 0.5),
            self_p90=percentile(own, 0.9),
            gap_p50=percentile(gaps, 0.5),
            gap_p90=percentile(gaps, 0.9),
        )
        for (window, caller, callee), (lat, own, gaps, errors) in sorted(cells.items())
    ]


def _is_client(span: Span, trace: dict[str, Span]) -> bool:
    """A span inside an invocation (its parent is the same service): a client call, not the entry."""
    parent = trace.get(span.parent_id)
    return parent is not None and parent.service == span.service


def _waiting(span: Span, trace: dict[str, Span]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    stack = list(span.children)
    while stack:
        child = stack.pop()
        if child.service != span.service:
            parent = trace.get(child.parent_id)
            wrap = (
                parent if parent is not None and parent is not span and _is_client(parent, trace) else child
            )
            out.append((wrap.start_ns, wrap.end_ns))
        else:
            stack.extend(child.children)
    return out


def _union(intervals: list[tuple[int, int]], lo: int, hi: int) -> int:
    total = 0
    current: tuple[int, int] | None = None
    for start, end in sorted((max(lo, s), min(hi, e)) for s, e in intervals):
        if end <= start:
            continue
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += current[1] - current[0]
    return total
