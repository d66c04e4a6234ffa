"""Run the webhook API: `python -m api` (settings from FIREBREAK_* / .env)."""

from __future__ import annotations

import functools
import logging
import sys

import uvicorn

from api.app import ConfigurationError, create_app
from firebreak.metrics import temporal_runtime
from firebreak.telemetry import install_tracing
from firebreak.temporal import connect
from models.settings import Settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    provider = install_tracing(settings, "api")  # before connecting: the client traces too
    runtime, temporal_metrics = (
        temporal_runtime(settings.temporal_metrics_port) if settings.metrics_enabled else (None, None)
    )
    try:
        app = create_app(
            settings,
            functools.partial(connect, runtime=runtime),
            tracer_provider=provider,
            temporal_metrics_url=temporal_metrics,
        )
    except ConfigurationError as exc:
        logging.getLogger("firebreak.api").error("cannot start: %s", exc)
        return 2
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        access_log=settings.api_access_log,  # one line per alert is costly in a storm
        timeout_keep_alive=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
