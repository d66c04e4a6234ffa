"""What LLM calls cost, and the caps that keep an alert storm from becoming a bill.

Two caps, both checked before a decision goes to the LLM (a refusal routes it to rules,
and the decision says so):

- per incident: tokens and dollars the incident has already spent (the workflow carries
  the running total in each agent's input, so it survives worker restarts);
- global: requests per minute and dollars per window, held by `GlobalBudget`. That state
  lives in the worker process: with N workers the global caps are N times these numbers.
  Reservations are taken before a call and settled after it, so concurrent incidents in a
  storm cannot all pass the check before any of them has spent.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from models.agents import LLMUsage


@dataclass(frozen=True)
class Pricing:
    """US dollars per million tokens (Sonnet-class list prices by default)."""

    input_per_mtok: float = 3.0
    output_per_mtok: float = 15.0
    cache_write_per_mtok: float = 3.75
    cache_read_per_mtok: float = 0.30

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_creation_input_tokens: int = 0,
        cache_read_input_tokens: int = 0,
    ) -> float:
        return round(
            (
                input_tokens * self.input_per_mtok
                + output_tokens * self.output_per_mtok
                + cache_creation_input_tokens * self.cache_write_per_mtok
                + cache_read_input_tokens * self.cache_read_per_mtok
            )
            / 1_000_000,
            6,
        )


@dataclass(frozen=True)
class IncidentCaps:
    tokens: int = 200_000
    cost_usd: float = 1.00

    def refusal(self, used: LLMUsage, tokens: int, cost_usd: float) -> str | None:
        """Why a request of this estimated size would break the cap, or None."""
        if used.total_tokens + tokens > self.tokens:
            return (
                f"incident LLM token budget: {used.total_tokens} used + ~{tokens} needed > cap {self.tokens}"
            )
        if used.cost_usd + cost_usd > self.cost_usd:
            return (
                f"incident LLM cost budget: ${used.cost_usd:.4f} used + ~${cost_usd:.4f} needed "
                f"> cap ${self.cost_usd:.2f}"
            )
        return None


class GlobalBudget:
    """Requests per minute and spend per window, for this worker process."""

    def __init__(
        self,
        requests_per_minute: int,
        spend_cap_usd: float,
        window_seconds: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.spend_cap_usd = spend_cap_usd
        self.window_seconds = window_seconds
        self._clock = clock
        self._requests: deque[float] = deque()
        self._spend: deque[tuple[float, float]] = deque()
        self._reserved_usd = 0.0
        self._reserved_requests = 0

    @property
    def spent_usd(self) -> float:
        self._expire(self._clock())
        return sum(cost for _, cost in self._spend)

    def reserve(self, requests: int, cost_usd: float) -> str | None:
        """Hold room for up to `requests` calls costing up to `cost_usd`; or say why not."""
        now = self._clock()
        self._expire(now)
        if len(self._requests) + self._reserved_requests + requests > self.requests_per_minute:
            return f"global LLM rate cap: {self.requests_per_minute} requests/minute on this worker"
        spent = sum(cost for _, cost in self._spend) + self._reserved_usd
        if spent + cost_usd > self.spend_cap_usd:
            return (
                f"global LLM spend cap: ${spent:.4f} spent or reserved + ~${cost_usd:.4f} "
                f"> ${self.spend_cap_usd:.2f} per {self.window_seconds:g}s on this worker"
            )
        self._reserved_requests += requests
        self._reserved_usd += cost_usd
        return None

    def record(self, cost_usd: float) -> None:
        """One call happened (successful or not, it counts against the rate)."""
        now = self._clock()
        self._requests.append(now)
        if cost_usd:
            self._spend.append((now, cost_usd))

    def release(self, requests: int, cost_usd: float) -> None:
        """Give back a reservation once its calls are recorded."""
        self._reserved_requests = max(0, self._reserved_requests - requests)
        self._reserved_usd = max(0.0, self._reserved_usd - cost_usd)

    def _expire(self, now: float) -> None:
        while self._requests and self._requests[0] <= now - 60.0:
            self._requests.popleft()
        while self._spend and self._spend[0][0] <= now - self.window_seconds:
            self._spend.popleft()
