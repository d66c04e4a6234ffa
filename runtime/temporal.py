"""Connect to Temporal the way the `temporal` CLI does, with Firebreak's data converter."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client, Interceptor
from temporalio.envconfig import ClientConfig

from runtime.codec import data_converter
from runtime.settings import Settings

DEFAULT_ADDRESS = "127.0.0.1:7233"


def connect_config() -> dict[str, Any]:
    """Connection settings from envconfig (TEMPORAL_ADDRESS, profiles), loopback by default."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    if not config.get("target_host"):
        config["target_host"] = os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS)
    return config


async def connect(
    target_host: str | None = None,
    codec_keys: SecretStr | str | None = None,
    *,
    interceptors: Sequence[Interceptor] | None = None,
    **overrides: Any,
) -> Client:
    """Connect with Firebreak's converter; encrypts payloads when codec keys are configured.

    Keys default to FIREBREAK_CODEC_KEYS, so every process (API, worker, CLI) agrees.
    Interceptors default to Temporal's tracing interceptor once the process has set up
    tracing (`runtime.tracing.install_tracing`), so the API's and the worker's clients carry
    one trace from the webhook through the workflow; otherwise none.
    """
    config = connect_config()
    if target_host is not None:
        config["target_host"] = target_host
    config.update(overrides)
    if codec_keys is None:
        codec_keys = Settings().resolved_codec_keys()
    if interceptors is None:
        interceptors = _default_interceptors()
    return await Client.connect(
        data_converter=data_converter(codec_keys), interceptors=list(interceptors), **config
    )


def _default_interceptors() -> list[Interceptor]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        return []  # tracing is not set up in this process (the CLI, tests)
    from runtime.tracing import client_interceptors

    return list(client_interceptors())
