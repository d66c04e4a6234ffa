"""`python -m consumer` runs on uvloop, as the API's uvicorn does; `tests/test_devstack_bus.py`
runs the real process against nats-server and Temporal."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

import consumer.__main__ as consumer_main
from runtime.settings import Settings


def test_the_consumer_serves_on_a_uvloop_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    loops: list[type[asyncio.AbstractEventLoop]] = []

    async def record_loop(settings: Settings) -> None:
        loops.append(type(asyncio.get_running_loop()))

    monkeypatch.setattr(consumer_main, "serve", record_loop)
    settings = Settings(bus_url="nats://127.0.0.1:4222", metrics_enabled=False)

    assert consumer_main.main(settings) == 0
    assert loops == [uvloop.Loop]
