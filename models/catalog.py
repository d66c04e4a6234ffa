"""The action catalog: every remediation Firebreak may run, with its risk and limits.

The catalog (`playbooks/catalog.yaml`, loaded by `policies.catalog.load_catalog`) is the
planner's whole vocabulary: an action not in it, or params that fail its JSON schema, can
never reach Ansible.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import BaseModel, Field, field_validator

# Marks a string param as free text in a catalog schema (it still reaches Ansible only as data).
FREE_TEXT = "x-free-text"


class Autonomy(StrEnum):
    """How far an action class may go on its own, least to most."""

    NOTIFY = "notify"
    RECOMMEND = "recommend"  # shadow: check mode only
    APPROVE = "approve"
    AUTONOMOUS = "autonomous"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ActionSpec(BaseModel):
    name: str
    description: str
    playbook: str
    risk: Risk
    autonomy: Autonomy = Autonomy.APPROVE
    timeout_seconds: int = Field(gt=0, le=3600)
    vault_role: str
    params_schema: dict[str, Any]
    risk_notes: str = ""
    # A playbook that undoes this action (run when verification fails); same params, plus
    # `rollback_of`: the idempotency key of the run to undo.
    rollback: str | None = None
    # The same action against a host in the inventory, over SSH with a per-action OpenBao
    # certificate (README "Remediation over SSH"): the playbook, and its rollback if any.
    ssh_playbook: str | None = None
    ssh_rollback: str | None = None

    @field_validator("params_schema")
    @classmethod
    def _schema_is_valid(cls, schema: dict[str, Any]) -> dict[str, Any]:
        jsonschema.Draft202012Validator.check_schema(schema)
        # Params reach Ansible (as unsafe data), so each must be bounded by the schema itself:
        # no unknown params, and a string is a pattern or an enum unless it is declared
        # free text (`x-free-text: true`) with a maxLength.
        if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
            raise ValueError("params_schema: must be an object schema with additionalProperties: false")
        for name, prop in (schema.get("properties") or {}).items():
            if not isinstance(prop, dict) or prop.get("type") != "string":
                continue
            if prop.get(FREE_TEXT) is True:
                if not isinstance(prop.get("maxLength"), int):
                    raise ValueError(f"params_schema.properties.{name}: free text needs a maxLength")
            elif "pattern" not in prop and "enum" not in prop:
                raise ValueError(
                    f"params_schema.properties.{name}: a string param needs a pattern or an enum, "
                    f"or `{FREE_TEXT}: true` and a maxLength"
                )
        return schema


class CatalogError(ValueError):
    """The catalog file or a proposed action does not validate."""


class Catalog(BaseModel):
    actions: dict[str, ActionSpec]
    directory: Path

    def get(self, name: str) -> ActionSpec:
        try:
            return self.actions[name]
        except KeyError:
            raise CatalogError(f"unknown action {name!r}; the catalog has {sorted(self.actions)}") from None

    def validate_params(self, name: str, params: dict[str, Any]) -> ActionSpec:
        """Check params against the action's schema; raises CatalogError naming the field."""
        spec = self.get(name)
        errors = sorted(
            jsonschema.Draft202012Validator(spec.params_schema).iter_errors(params),
            key=lambda e: list(e.absolute_path),
        )
        if errors:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e.absolute_path) or '(params)'}: {e.message}" for e in errors
            )
            raise CatalogError(f"action {name!r}: invalid params: {detail}")
        return spec
