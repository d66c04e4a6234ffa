"""Policy activity: ask the Rego policies whether a proposed action may run.

The activity adds to the workflow's `PolicyInput` what a policy needs and a workflow cannot
compute (policies/remediation.rego documents the whole input):

- `time`: the weekday and minute of the day of `now`, in UTC, for maintenance windows.
  regopy 1.5 has time.clock/time.weekday, but its time.parse_rfc3339_ns returns undefined
  for the "Z" suffix that Python writes, so the policy never parses `now` itself;
- `blast_radius`: the services that depend on the target, transitively, from the topology
  (`FIREBREAK_TOPOLOGY_FILE`); `known: false` without one or for a target not in it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from temporalio import activity

from activities.errors import PolicyError, to_application_error
from models.agents import ProposedAction
from models.catalog import Catalog, CatalogError
from models.policy import (
    MAX_BLAST_SERVICES,
    AutonomyAssessment,
    BlastRadius,
    PolicyDecision,
    PolicyInput,
    PolicyVerdict,
)
from policies.admission import seal_decision
from policies.evaluator import PolicyEvaluator
from policies.program import DECISION_QUERY, PolicyEvaluationError
from policies.seals import Sealer
from rca.topology import Topology

POLICY_NAME = DECISION_QUERY.removeprefix("data.").removesuffix(".decision")


def blast_radius(topology: Topology | None, target: str) -> BlastRadius:
    if topology is None or target not in topology.services:
        return BlastRadius(known=False)
    hurt = sorted(topology.blast_radius(target))
    return BlastRadius(known=True, size=len(hurt), services=hurt[:MAX_BLAST_SERVICES])


def policy_document(input: PolicyInput, topology: Topology | None) -> dict[str, Any]:
    """The Rego input for one decision: the workflow's input plus time and blast radius."""
    now = input.now.astimezone(UTC)
    document = input.model_dump(mode="json")
    document["now"] = now.isoformat()  # "+00:00", which regopy's RFC3339 parser accepts
    document["time"] = {
        "weekday": now.strftime("%A"),
        "clock": now.strftime("%H:%M"),
    }
    document["blast_radius"] = blast_radius(topology, input.action.target).model_dump(mode="json")
    return document


def to_decision(raw: dict[str, Any], input: PolicyInput, blast: BlastRadius) -> PolicyDecision:
    autonomy = raw.get("autonomy")
    try:
        return PolicyDecision(
            verdict=PolicyVerdict(raw["verdict"]),
            reasons=[str(r) for r in raw.get("reasons", [])],
            approver_group=raw.get("approver_group"),
            approvers=[str(a) for a in raw.get("approvers") or []],
            mode="check" if raw.get("mode") == "check" else "apply",
            autonomy=AutonomyAssessment.model_validate(autonomy) if isinstance(autonomy, dict) else None,
            policy=POLICY_NAME,
            action=input.action.action,
            target=input.action.target,
            blast_radius=blast,
        )
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise PolicyEvaluationError(f"{DECISION_QUERY} gave a malformed decision: {exc}") from None


def catalog_mismatch(catalog: Catalog, action: ProposedAction) -> str | None:
    """Why the proposed action is not the catalog's (unknown, bad params, restated facts)."""
    try:
        spec = catalog.validate_params(action.action, action.params)
    except CatalogError as exc:
        return str(exc)
    for field, stated, actual in (
        ("risk", action.risk, spec.risk.value),
        ("autonomy", action.autonomy, spec.autonomy.value),
        ("timeout_seconds", action.timeout_seconds, spec.timeout_seconds),
    ):
        if stated != actual:
            return f"action.{field}: the plan says {stated!r}, the catalog says {actual!r}"
    return None


class PolicyActivities:
    """Decides with the Rego policy and seals each decision for the admission to check.

    The policy reads the action's risk and autonomy, so they must be the catalog's own: a
    plan that restates them differently (only a forged one can) is refused, never decided.
    """

    def __init__(
        self, evaluator: PolicyEvaluator, catalog: Catalog, sealer: Sealer, topology: Topology | None = None
    ) -> None:
        self._evaluator = evaluator
        self._catalog = catalog
        self._sealer = sealer
        self._topology = topology

    @activity.defn
    async def evaluate_policy(self, input: PolicyInput) -> PolicyDecision:
        caller = activity.info().workflow_id
        if caller != input.incident_id:
            raise to_application_error(
                PolicyError(f"incident_id: {input.incident_id!r} asked for by workflow {caller!r}")
            )
        mismatch = catalog_mismatch(self._catalog, input.action)
        if mismatch is not None:
            raise to_application_error(CatalogError(mismatch))
        document = policy_document(input, self._topology)
        try:
            raw = await self._evaluator.decide(document)
            decision = to_decision(raw, input, BlastRadius.model_validate(document["blast_radius"]))
        except PolicyEvaluationError as exc:
            # Never a silent allow: a policy that cannot decide fails the step loudly.
            raise to_application_error(PolicyError(str(exc))) from None
        return seal_decision(self._sealer, input.incident_id, input.action, decision)
