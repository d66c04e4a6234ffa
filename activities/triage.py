"""Triage activity: classify the incident and propose a catalog action."""

from __future__ import annotations

from temporalio import activity

from agents.rules import RuleReasoner
from models.catalog import Catalog, CatalogError
from models.incident import TriageInput, TriageResult


class TriageActivities:
    def __init__(self, reasoner: RuleReasoner, catalog: Catalog) -> None:
        self._reasoner = reasoner
        self._catalog = catalog

    @activity.defn
    async def triage(self, input: TriageInput) -> TriageResult:
        """Rules first; a proposal that fails the catalog becomes an escalation, not a guess."""
        result = self._reasoner.triage(input.alerts)
        proposed = result.proposed
        if proposed is None:
            return result
        try:
            spec = self._catalog.validate_params(proposed.action, proposed.params)
        except CatalogError as exc:
            return result.model_copy(
                update={"proposed": None, "escalate_reason": f"proposed action rejected: {exc}"}
            )
        return result.model_copy(
            update={
                "proposed": proposed.model_copy(
                    update={
                        "risk": spec.risk.value,
                        "autonomy": spec.autonomy.value,
                        "timeout_seconds": spec.timeout_seconds,
                    }
                )
            }
        )
