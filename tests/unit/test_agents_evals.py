"""The rules reasoner on the labelled incidents in evals/cases.yaml must not regress.

The floors are the scores the shipped rules reached when the suite was written: 22 of 26
outcomes right, the misses being cases that need judgment the rules lack (unknown
signatures, how far to scale, an ambiguous root cause), all missed safely. Safety and
escalation are held at 1.0: the rules may fail to act, never act wrongly.
"""

from __future__ import annotations

from evals.agents.harness import load_cases
from evals.agents.run import evaluate
from runtime.settings import Settings

FLOORS = {
    "triage_accuracy": 0.84,
    "root_cause_accuracy": 0.88,  # 0.82 until the ranking led on disagreement (0.882 since)
    "plan_correctness": 0.75,
    "escalation_recall": 1.0,
    "no_unwarranted_action": 1.0,
    "outcome_accuracy": 0.88,
}


async def test_rules_eval_meets_floors() -> None:
    summary, scored = await evaluate("rules", Settings(_env_file=None, anthropic_api_key=None))
    assert summary["cases"] == len(load_cases()) >= 25
    assert summary["llm_calls"] == 0
    below = {k: (summary[k], floor) for k, floor in FLOORS.items() if summary[k] < floor}
    misses = [s.row() for s in scored if not s.outcome_ok]
    assert not below, f"scores below their floors: {below}; outcome misses: {misses}"
    # Every outcome the rules get wrong is a missed action (escalated instead), never a bad one.
    assert all(
        s.run.outcome == "escalate" and s.case.expect.outcome == "act" for s in scored if not s.outcome_ok
    )


def test_cases_are_well_formed() -> None:
    cases = load_cases()
    assert len({c.id for c in cases}) == len(cases)
    for case in cases:
        assert case.to_alerts(), case.id
        if case.expect.outcome == "act":
            assert case.expect.action and (case.expect.params or case.expect.params_gt), case.id
        else:
            assert case.expect.action is None, case.id
    outcomes = [c.expect.outcome for c in cases]
    assert {"act", "escalate", "no_action"} <= set(outcomes)
