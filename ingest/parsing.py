"""Alert bodies in the generic format, and validation errors as field-named refusals.

Shared by the webhook (api/) and the bus consumer (consumer/), so a sender reads the same
words on either path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from models.alert import Alert, GenericAlert

_GenericList = Annotated[list[GenericAlert], Field(min_length=1)]
GENERIC = TypeAdapter(GenericAlert | _GenericList)  # what /alerts/generic documents
_GENERIC_ONE = TypeAdapter(GenericAlert)
_GENERIC_MANY = TypeAdapter(_GenericList)


def parse_generic(raw: Any, now: datetime) -> list[Alert]:
    """One generic alert or a list of them; a ValidationError names the field (`name`, `1.service`).

    Validating against the union would report every branch ("GenericAlert.name ...;
    list[GenericAlert]: Input should be a valid list"): the JSON's own shape picks the branch.
    """
    if isinstance(raw, list):
        items = _GENERIC_MANY.validate_python(raw)
    else:
        items = [_GENERIC_ONE.validate_python(raw)]
    return [item.to_alert(now) for item in items]


def field_errors(exc: ValidationError, limit: int = 20) -> list[dict[str, str]]:
    """Each problem with the field it is in (`alerts.0.labels`, or `(body)` for the whole)."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors(include_url=False)[:limit]
    ]


def refusal_text(detail: list[dict[str, str]]) -> str:
    return "invalid payload: " + "; ".join(f"{d['field']}: {d['message']}" for d in detail[:3])
