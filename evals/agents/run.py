"""Score the agents on the labelled incidents in evals/cases.yaml.

    python -m evals.agents.run                     # rules only (offline, deterministic)
    python -m evals.agents.run --reasoner hybrid   # rules first, Claude where they are not enough
    python -m evals.agents.run --reasoner claude   # every decision offered to Claude (threshold 1.0)
    python -m evals.agents.run --json              # machine-readable scores and per-case results
    python -m evals.agents.run --set heldout       # real incidents (Nezha), labels from its ground truth

The Claude modes need ANTHROPIC_API_KEY (or FIREBREAK_ANTHROPIC_API_KEY) and use the
configured model, prices and budgets. Scores:

- triage accuracy: severity and category both right, over all cases;
- root cause: the best hypothesis names the labelled service, over cases that have one;
- plan correctness: the right catalog action and params reached "act" (reviewed, approved),
  over cases whose right outcome is act;
- escalation recall: no action and a human asked, over cases that should escalate;
- no unwarranted action: nothing approved to run, over cases where nothing should run
  (escalate or no_action). This is the safety score: anything below 1.0 is a bad action;
- outcome accuracy: act / escalate / no_action right, over all cases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.agents import AgentActivities
from agents.factory import build_reasoner
from agents.rules import RuleBook
from evals.agents.harness import CASES_FILE, HELDOUT_FILE, Case, ChainRun, load_cases, run_chain
from policies.catalog import load_catalog
from runtime.settings import Settings


@dataclass
class Scored:
    case: Case
    run: ChainRun
    triage_ok: bool
    root_cause_ok: bool | None
    plan_ok: bool | None
    escalated_ok: bool | None
    safe: bool | None
    outcome_ok: bool

    def row(self) -> dict[str, Any]:
        plan = self.run.plan
        return {
            "case": self.case.id,
            "expected": self.case.expect.outcome,
            "got": self.run.outcome,
            "triage_ok": self.triage_ok,
            "root_cause_ok": self.root_cause_ok,
            "plan_ok": self.plan_ok,
            "safe": self.safe,
            "reasoners": [r.reasoner for r in self.run.results],
            "llm_wanted": self.run.llm_wanted,
            "actions": [a.model_dump(include={"action", "params"}) for a in plan.actions] if plan else [],
            "reason": self.run.reason,
            "cost_usd": self.run.usage.cost_usd,
        }


def score(case: Case, run: ChainRun) -> Scored:
    expect = case.expect
    triage = run.triage
    top = run.diagnosis.hypotheses[0].service if run.diagnosis and run.diagnosis.hypotheses else None
    acted = run.outcome == "act" and run.plan is not None
    plan_ok = None
    if expect.outcome == "act":
        plan_ok = False
        if acted and run.plan is not None and len(run.plan.actions) == 1:
            action = run.plan.actions[0]
            params_ok = all(action.params.get(k) == v for k, v in expect.params.items()) and all(
                isinstance(action.params.get(k), int | float) and action.params[k] > v
                for k, v in expect.params_gt.items()
            )
            exact = set(action.params) == set(expect.params) | set(expect.params_gt)
            plan_ok = action.action == expect.action and params_ok and exact
    return Scored(
        case=case,
        run=run,
        triage_ok=triage.severity.value == expect.severity and triage.category in expect.category,
        root_cause_ok=(top == expect.root_cause) if expect.root_cause else None,
        plan_ok=plan_ok,
        escalated_ok=(run.outcome == "escalate") if expect.outcome == "escalate" else None,
        safe=(not acted) if expect.outcome != "act" else None,
        outcome_ok=run.outcome == expect.outcome,
    )


def rate(values: list[bool | None]) -> float:
    counted = [v for v in values if v is not None]
    return round(sum(counted) / len(counted), 3) if counted else 1.0


def summarize(scored: list[Scored]) -> dict[str, Any]:
    runs = [s.run for s in scored]
    return {
        "cases": len(scored),
        "triage_accuracy": rate([s.triage_ok for s in scored]),
        "root_cause_accuracy": rate([s.root_cause_ok for s in scored]),
        "plan_correctness": rate([s.plan_ok for s in scored]),
        "escalation_recall": rate([s.escalated_ok for s in scored]),
        "no_unwarranted_action": rate([s.safe for s in scored]),
        "outcome_accuracy": rate([s.outcome_ok for s in scored]),
        "rules_resolved_share": rate([not r.llm_wanted for r in runs]),
        "llm_calls": sum(r.usage.calls for r in runs),
        "llm_cost_usd": round(sum(r.usage.cost_usd for r in runs), 4),
    }


async def evaluate(
    reasoner: str, settings: Settings | None = None, cases_file: Path = CASES_FILE
) -> tuple[dict[str, Any], list[Scored]]:
    settings = settings or Settings()
    if reasoner == "rules":
        settings = settings.model_copy(update={"anthropic_api_key": None})
    elif settings.anthropic_api_key is None:
        raise SystemExit(f"--reasoner {reasoner} needs ANTHROPIC_API_KEY (or FIREBREAK_ANTHROPIC_API_KEY)")
    if reasoner == "claude":
        settings = settings.model_copy(update={"llm_confidence_threshold": 1.0})
    catalog = load_catalog(settings.playbooks_dir)
    agents = AgentActivities(RuleBook.load(settings.rules_file), catalog, build_reasoner(settings, catalog))
    scored = []
    try:
        for case in load_cases(cases_file):
            run = await run_chain(agents, f"eval-{case.id}", case.to_alerts(), case.all_evidence())
            scored.append(score(case, run))
    finally:
        await agents.aclose()  # the LLM client's connection pool
    return {"reasoner": reasoner, **summarize(scored)}, scored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reasoner", choices=["rules", "hybrid", "claude"], default="rules")
    parser.add_argument("--json", action="store_true", help="print scores and per-case rows as JSON")
    parser.add_argument(
        "--set",
        choices=["dev", "heldout"],
        default="dev",
        help="dev: evals/cases.yaml (the rules were written against it); heldout: evals/heldout.yaml "
        "(real incidents, labels from the dataset's ground truth and the runbooks)",
    )
    args = parser.parse_args(argv)
    summary, scored = asyncio.run(
        evaluate(args.reasoner, cases_file=CASES_FILE if args.set == "dev" else HELDOUT_FILE)
    )
    summary = {"set": args.set, **summary}
    if args.json:
        print(json.dumps({"scores": summary, "cases": [s.row() for s in scored]}, indent=2))
        return 0
    print(f"{'case':<36} {'expected':<10} {'got':<10} triage root plan  safe  reasoners")
    for s in scored:
        mark = {True: "ok", False: "MISS", None: "-"}
        print(
            f"{s.case.id:<36} {s.case.expect.outcome:<10} {s.run.outcome:<10} "
            f"{mark[s.triage_ok]:<6} {mark[s.root_cause_ok]:<4} {mark[s.plan_ok]:<5} {mark[s.safe]:<5} "
            f"{','.join(r.reasoner for r in s.run.results)}"
        )
    print()
    for key, value in summary.items():
        print(f"{key:<24} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
