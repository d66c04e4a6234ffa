"""The worker warms slow loads (the dense model) at start, on a daemon thread beside polling."""

from __future__ import annotations

import logging
import threading

import pytest

from worker import ActivitySet


def test_warmers_run_in_the_background_and_a_failure_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []
    done = threading.Event()

    def broken() -> None:
        raise RuntimeError("model file missing")

    def loads() -> None:
        ran.append(threading.current_thread().name)
        done.set()

    activities = ActivitySet(functions=[], warmers=[broken, loads])
    with caplog.at_level(logging.INFO, logger="firebreak.worker"):
        activities.warm_in_background()
        assert done.wait(10), "the second warmer ran although the first failed"
        for thread in threading.enumerate():
            if thread.name == "firebreak-warm-up":
                assert thread.daemon, "a stop never waits for a load in progress"
                thread.join(10)
    assert ran == ["firebreak-warm-up"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("warm-up failed (RuntimeError); it loads on first use" in m for m in messages), messages
    assert any(m.startswith("warm-up done in") for m in messages), messages
