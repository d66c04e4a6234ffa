"""Run the bus consumer: `python -m consumer` or `firebreak consume` (settings from FIREBREAK_*)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop

from consumer.bus import BusConsumer, temporal_deliver
from ingest.bus import ConfigurationError, check_settings, redacted
from runtime.settings import Settings
from runtime.temporal import connect

logger = logging.getLogger("firebreak.consumer")


async def serve(settings: Settings) -> None:
    consumer = BusConsumer(settings, temporal_deliver(settings, connect))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await consumer.run(stop)


def main(settings: Settings | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings or Settings()
    try:
        url = check_settings(settings)
    except ConfigurationError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    metrics_server = None
    if settings.metrics_enabled:
        from prometheus_client import start_http_server

        from runtime.metrics import REGISTRY

        metrics_server, _ = start_http_server(
            settings.bus_metrics_port, addr=settings.metrics_host, registry=REGISTRY
        )
        logger.info("metrics on http://%s:%s/metrics", settings.metrics_host, metrics_server.server_port)
    try:
        # uvloop, as the API's uvicorn runs: in a storm the consumer's event loop (NATS
        # deliveries, acks, Temporal calls) is much of its CPU, on the box Temporal shares.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(settings))
    except OSError as exc:  # the broker is not there at start: say so, exit non-zero
        logger.error("cannot reach the bus at %s: %s", redacted(url), type(exc).__name__)
        return 1
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
