"""Run the webhook API: `python -m api` (settings from FIREBREAK_* / .env)."""

from __future__ import annotations

import functools
import logging
import sys

from api.app import ConfigurationError, create_app
from api.server import serve
from runtime.metrics import temporal_runtime
from runtime.settings import Settings
from runtime.temporal import connect
from runtime.tracing import install_tracing


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
    serve(app, settings)  # uvicorn with deadlines for slow clients (api/server.py)
    return 0


if __name__ == "__main__":
    sys.exit(main())
