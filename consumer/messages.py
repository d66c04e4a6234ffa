"""Bus messages -> `Alert`s, validated exactly as the webhook validates its bodies.

The subject says what a message holds: `<prefix>.alertmanager` an Alertmanager v4 webhook
body, `<prefix>.generic` one generic alert or a list of them (tokens after those are free
for publishers, e.g. `<prefix>.generic.team-a`). A message that fails here can never become
valid by being redelivered, so the consumer dead-letters it with `Rejected.reason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import ValidationError

from ingest.parsing import field_errors, parse_generic, refusal_text
from models.alert import Alert, AlertmanagerPayload
from runtime.bounded import BoundsError, parse_json

Source = Literal["alertmanager", "generic"]
SOURCES: tuple[Source, ...] = ("alertmanager", "generic")
MAX_REASON = 1000  # a header value; the body keeps the whole message


@dataclass(frozen=True)
class Decoded:
    source: Source
    alerts: list[Alert]


@dataclass(frozen=True)
class Rejected:
    reason: str


def source_of(subject: str, prefix: str) -> Source | None:
    """The format a subject names, or None when it names none."""
    if not subject.startswith(prefix + "."):
        return None
    token = subject[len(prefix) + 1 :].split(".", 1)[0]
    return next((s for s in SOURCES if s == token), None)


def decode(subject: str, data: bytes, *, prefix: str, max_bytes: int, now: datetime) -> Decoded | Rejected:
    """Validate a message whole; nothing of a rejected message is delivered.

    `now` stands in for a generic alert's missing `starts_at`: the time the bus stored the
    message, so a redelivery after an outage keeps when the alert was raised.
    """
    source = source_of(subject, prefix)
    if source is None:
        return Rejected(
            f"subject: {subject[:200]!r} names no format; "
            f"publish to {prefix}.alertmanager or {prefix}.generic"
        )
    if len(data) > max_bytes:
        return Rejected(f"body: larger than {max_bytes} bytes ({len(data)})")
    try:
        raw = parse_json(data)  # the webhook's bounds: depth, sizes, numbers, duplicate keys
    except BoundsError as exc:
        return Rejected(f"body: {exc}")
    try:
        if source == "alertmanager":
            alerts = AlertmanagerPayload.model_validate(raw).to_alerts()
        else:
            alerts = parse_generic(raw, now)
    except ValidationError as exc:
        # The webhook's own 422 text, so a sender reads the same words on either path.
        return Rejected(refusal_text(field_errors(exc)))
    except ValueError as exc:
        return Rejected(f"invalid payload: {exc}")
    return Decoded(source=source, alerts=alerts)


def header_safe(text: str) -> str:
    """One bounded header line: NATS headers end at CR/LF, so none may be in the value."""
    return " ".join(text.split())[:MAX_REASON]
