"""Rank catalog actions from retrieved runbooks and similar past incidents.

A runbook that recommends an action adds a little; a similar incident where the action
worked adds more, and more still when a human chose it; one where it failed, was rejected
or was judged wrong takes away. Nearer neighbours weigh more (by rank), and a past incident
with the same alert weighs more than one that only shares a service or some words. Every
contribution names what it rests on, so the planner can cite it.
"""

from __future__ import annotations

from collections import defaultdict

from models.memory import ActionOutcome, ActionSuggestion, IncidentRecord, Passage, SimilarIncident

RUNBOOK_WEIGHT = 0.5
POSTMORTEM_WEIGHT = 0.4
MATCH_FACTORS = {"alert": 1.0, "service": 0.6, "category": 0.6, "text": 0.3}
VERIFIED_SUCCESS = 1.0
UNVERIFIED_SUCCESS = 0.5
HUMAN_CHOICE_BONUS = 1.25
FAILURE = -1.0
REJECTION = -0.8
USEFUL = 0.5
WRONG = -1.0


def _match_factor(incident: SimilarIncident) -> float:
    kinds = {m.split(":", 1)[0] for m in incident.matched_on}
    return max((MATCH_FACTORS.get(k, 0.3) for k in kinds), default=0.3)


def _outcome_value(outcome: ActionOutcome) -> tuple[float, str]:
    if outcome.check_mode or outcome.status == "not_run":
        return 0.0, ""
    if outcome.status == "rejected":
        return REJECTION, "rejected"
    if outcome.succeeded:
        value = VERIFIED_SUCCESS if outcome.verified else UNVERIFIED_SUCCESS
        what = "worked" + (" (verified)" if outcome.verified else "")
        if outcome.approved_by:
            return value * HUMAN_CHOICE_BONUS, f"{what}, chosen by {outcome.approved_by}"
        return value, what
    if outcome.failed:
        return FAILURE, "failed" if outcome.status != "successful" else "ran but the alerts stayed"
    return 0.0, ""


def _record_values(record: IncidentRecord) -> dict[str, list[tuple[float, str]]]:
    values: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for outcome in record.actions:
        value, what = _outcome_value(outcome)
        if value:
            values[outcome.action].append((value, what))
    rejected_in_actions = {a.action for a in record.actions if a.status == "rejected"}
    for approval in record.approvals:
        if approval.decision == "rejected":
            for action in approval.actions:
                if action not in rejected_in_actions:
                    values[action].append((REJECTION, "rejected"))
                reason = f": {approval.reason}" if approval.reason else ""
                values[action].append((0.0, f"rejected by {approval.by}{reason}"))
    planned = {a.action for a in record.actions} | {x for a in record.approvals for x in a.actions}
    for note in record.feedback:
        for action in [note.action] if note.action else sorted(planned):
            text = f"judged {'useful' if note.useful else 'wrong'} by {note.by}" + (
                f": {note.note}" if note.note else ""
            )
            values[action].append((USEFUL if note.useful else WRONG, text))
    return values


def rank_actions(passages: list[Passage], incidents: list[SimilarIncident]) -> list[ActionSuggestion]:
    scores: dict[str, float] = defaultdict(float)
    reasons: dict[str, list[str]] = defaultdict(list)
    cited: dict[str, list[str]] = defaultdict(list)
    ranks: dict[str, int] = defaultdict(int)  # rank within each kind of document
    for passage in passages:
        rank = ranks[passage.kind]
        ranks[passage.kind] += 1
        weight = (RUNBOOK_WEIGHT if passage.kind == "runbook" else POSTMORTEM_WEIGHT) / (1 + rank)
        for action in passage.actions:
            scores[action] += weight
            reasons[action].append(f"{passage.kind} {passage.doc_id} recommends it")
            cited[action].append(passage.id)
    for rank, incident in enumerate(incidents):
        similarity = _match_factor(incident) / (1 + rank)
        for action, items in _record_values(incident.record).items():
            total = sum(v for v, _ in items)
            scores[action] += similarity * total
            what = "; ".join(t for _, t in items if t)
            reasons[action].append(f"{incident.id} ({', '.join(incident.matched_on)}): {what}")
            cited[action].append(incident.id)
    ranked = sorted(scores, key=lambda a: (-round(scores[a], 9), a))
    return [
        ActionSuggestion(
            action=a, score=round(scores[a], 4), reasons=reasons[a], cited=list(dict.fromkeys(cited[a]))
        )
        for a in ranked
    ]
