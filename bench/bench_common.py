"""What the benchmarks share: a free loopback port, a percentile, and how results are printed."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(result: Mapping[str, object]) -> None:
    """An aligned table for people, then one JSON line for scripts."""
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))
