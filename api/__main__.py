"""Run the webhook API: `python -m api` (settings from FIREBREAK_* / .env)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from api.app import ConfigurationError, create_app
from firebreak.temporal import connect
from models.settings import Settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    try:
        app = create_app(settings, connect)
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
