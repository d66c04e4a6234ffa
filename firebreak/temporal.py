"""Connect to Temporal the way the `temporal` CLI does, with Firebreak's data converter."""

from __future__ import annotations

import os
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client
from temporalio.envconfig import ClientConfig

from firebreak.codec import data_converter
from models.settings import Settings

DEFAULT_ADDRESS = "127.0.0.1:7233"


def connect_config() -> dict[str, Any]:
    """Connection settings from envconfig (TEMPORAL_ADDRESS, profiles), loopback by default."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    if not config.get("target_host"):
        config["target_host"] = os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS)
    return config


async def connect(
    target_host: str | None = None, codec_keys: SecretStr | str | None = None, **overrides: Any
) -> Client:
    """Connect with Firebreak's converter; encrypts payloads when codec keys are configured.

    Keys default to FIREBREAK_CODEC_KEYS, so every process (API, worker, CLI) agrees.
    """
    config = connect_config()
    if target_host is not None:
        config["target_host"] = target_host
    config.update(overrides)
    if codec_keys is None:
        codec_keys = Settings().codec_keys
    return await Client.connect(data_converter=data_converter(codec_keys), **config)
