"""Connect to Temporal the way the `temporal` CLI does, with Firebreak's data converter."""

from __future__ import annotations

import os
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

DEFAULT_ADDRESS = "127.0.0.1:7233"


def connect_config() -> dict[str, Any]:
    """Connection settings from envconfig (TEMPORAL_ADDRESS, profiles), loopback by default."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    if not config.get("target_host"):
        config["target_host"] = os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS)
    return config


async def connect(target_host: str | None = None, **overrides: Any) -> Client:
    config = connect_config()
    if target_host is not None:
        config["target_host"] = target_host
    config.update(overrides)
    return await Client.connect(data_converter=pydantic_data_converter, **config)
