"""The rules reasoner on held-out real incidents (evals/agents/heldout.yaml, from Nezha).

Labels come from the dataset's fault list and the runbooks (tools/nezha_heldout.py), not
from the rules. Measured on all 101 cases (`python -m evals.agents.run --set heldout`,
2026-11-30): outcome 0.713, no unwarranted action 1.0, escalation recall 1.0, root cause
0.851 (0.307 while the alert rule's hypothesis led even when the ranking blamed another
service), plan 0.121. This test runs every third case (34, to stay fast: root cause 0.912
there) against floors of the measured numbers minus a margin of 0.05: the rules may fail to
act on a real incident, they must not act on the alerting service when the root-cause
ranking blames another, and they must name the service the ranking found."""

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
MEASURED = {"no_unwarranted_action": 1.0, "escalation_recall": 1.0, "root_cause_accuracy": 0.912}


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
    named = sum(1 for s in scored if s.root_cause_ok) / len(scored)
    assert named >= MEASURED["root_cause_accuracy"] - MARGIN, [s.row() for s in scored if not s.root_cause_ok]


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
    assert (result.escalate_reason is not None) is escalates
    if escalates:
        assert "root-cause ranking puts cartservice first" in (result.escalate_reason or "")
        # The ranking's first candidate leads, at its own low confidence (below the evidence
        # threshold, so not a hypothesis on its own); the alert rule's follows it.
        led = [(h.service, h.confidence) for h in result.hypotheses]
        assert led == [("cartservice", 0.4), ("frontend", 0.7)]
        assert result.confidence == 0.4 and result.rule is None
    else:
        assert result.hypotheses[0].service == "frontend" and result.hypotheses[0].rule is not None
