"""The rules reasoner on held-out real incidents (evals/heldout.yaml, from Nezha).

Labels come from the dataset's fault list and the runbooks (tools/nezha_heldout.py), not
from the rules. Measured on all 101 cases (`python -m evals.agents.run --set heldout`): outcome
0.693, no unwarranted action 0.985, escalation recall 0.985, root cause 0.238, plan 0.0.
This test runs every third case (34, to stay fast) against floors of the measured safety
minus a margin of 0.05: the rules may fail to act on a real incident, they must not act on
the alerting service when the root-cause ranking blames another.
"""

from __future__ import annotations

import pytest

from activities.agents import AgentActivities
from agents.diagnosis import DiagnosisAgent
from agents.factory import build_reasoner
from agents.rules import RuleBook
from agents.triage import TriageAgent
from evals.agents.harness import HELDOUT_FILE, Case, load_cases, run_chain
from evals.agents.run import score
from models.agents import DiagnosisInput, Evidence, TriageInput
from policies.catalog import load_catalog
from runtime.settings import Settings

MARGIN = 0.05
MEASURED = {"no_unwarranted_action": 0.985, "escalation_recall": 0.985}


def test_heldout_cases_are_real_incidents_with_outside_labels() -> None:
    cases = load_cases(HELDOUT_FILE)
    assert len(cases) == 101
    for case in cases:
        assert case.scenario is not None and case.scenario.startswith("datasets/nezha/")
        assert case.expect.root_cause is not None and case.expect.root_cause in case.id


async def test_rules_do_not_act_on_the_symptom_when_the_ranking_blames_another_service() -> None:
    settings = Settings(_env_file=None, anthropic_api_key=None)
    catalog = load_catalog(settings.playbooks_dir)
    agents = AgentActivities(RuleBook.load(settings.rules_file), catalog, build_reasoner(settings, catalog))
    cases: list[Case] = load_cases(HELDOUT_FILE)[::3]
    try:
        scored = [
            score(c, await run_chain(agents, f"eval-{c.id}", c.to_alerts(), c.all_evidence())) for c in cases
        ]
    finally:
        await agents.aclose()
    should_not_act = [s for s in scored if s.case.expect.outcome != "act"]
    safe = sum(1 for s in should_not_act if s.safe) / len(should_not_act)
    assert safe >= MEASURED["no_unwarranted_action"] - MARGIN, [s.row() for s in should_not_act if not s.safe]


@pytest.mark.parametrize(("ranked_first", "escalates"), [("cartservice", True), ("frontend", False)])
def test_diagnosis_escalates_when_alert_rule_and_ranking_disagree(ranked_first: str, escalates: bool) -> None:
    settings = Settings(_env_file=None, anthropic_api_key=None)
    book, catalog = RuleBook.load(settings.rules_file), load_catalog(settings.playbooks_dir)
    alerts = Case.model_validate(
        {
            "id": "t",
            "alerts": [
                {"labels": {"alertname": "HighLatency", "service": "frontend", "severity": "warning"}}
            ],
            "expect": {"severity": "P3", "category": ["latency"], "outcome": "escalate"},
        }
    ).to_alerts()
    triage = TriageAgent(book, catalog).decide_by_rules(TriageInput(incident_id="t", alerts=alerts))
    evidence = [
        Evidence(source="rca", service=ranked_first, kind="root_cause", summary="candidate #1", score=0.4)
    ]
    result = DiagnosisAgent(book, catalog).decide_by_rules(
        DiagnosisInput(incident_id="t", alerts=alerts, triage=triage, evidence=evidence)
    )
    assert result.hypotheses[0].service == "frontend"  # the alert rule's hypothesis
    assert (result.escalate_reason is not None) is escalates
    if escalates:
        assert "root-cause ranking puts cartservice first" in (result.escalate_reason or "")
