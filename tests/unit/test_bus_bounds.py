"""The bus consumer parses a message with the webhook's bounds: a refused one carries the reason
(the field and the limit) that the consumer writes into the dead letter's header."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from consumer.messages import Decoded, Rejected, decode
from runtime.bounded import WEBHOOK_LIMITS

PREFIX = "firebreak.alerts"
NOW = datetime(2026, 11, 29, tzinfo=UTC)


def decoded(subject: str, data: bytes) -> Decoded | Rejected:
    return decode(subject, data, prefix=PREFIX, max_bytes=1_048_576, now=NOW)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"x":' * 3000 + b"1" + b"}" * 3000, ["body:", "nesting deeper than 32"]),
        (b'{"alerts": [' * 3000, ["body:", "nesting deeper than 32"]),
        (
            b'{"name": "Down", "service": "s", "labels": {"n": ' + b"7" * 5000 + b"}}",
            ["labels.n", "5000 digits"],
        ),
        (b'{"name": "Down", "name": "Up", "service": "s"}', ["name", "duplicate key"]),
        (json.dumps([{"name": "A", "service": "s"}] * 5000).encode(), ["1000", "alerts per request"]),
        (b'{"name": "Down", "service": "s", "labels": {"x": NaN}}', ["labels.x", "NaN is not JSON"]),
    ],
)
def test_hostile_messages_are_rejected_with_the_field_and_the_limit(data: bytes, words: list[str]) -> None:
    result = decoded(f"{PREFIX}.generic", data)
    assert isinstance(result, Rejected), result
    for word in words:
        assert word in result.reason, (word, result.reason)


def test_a_bounded_message_still_decodes() -> None:
    alerts = [{"name": f"A{i}", "service": "s"} for i in range(WEBHOOK_LIMITS.max_items)]
    result = decoded(f"{PREFIX}.generic", json.dumps(alerts).encode())
    assert isinstance(result, Decoded) and len(result.alerts) == WEBHOOK_LIMITS.max_items
