# May this remediation run, how far on its own, and who must approve it?
#
# input (activities/policy.py builds it from models.incident.PolicyInput):
#   incident_id, severity ("P1".."P4"), services, now (RFC3339),
#   action: {action, params, target, risk, autonomy (the catalog's level), timeout_seconds},
#   time: {weekday: "Monday".."Sunday", clock: "00:00".."23:59"}, in UTC. Computed by the
#         activity: regopy 1.5's time.parse_rfc3339_ns rejects the "Z" suffix Python writes.
#   blast_radius: {known, size, services}: who depends on the target (rca/topology.py);
#         known is false without a topology or when the target is not in it.
#   track_record: models.memory.ActionTrackRecord of this action class, or null.
# result: data.firebreak.remediation.decision =
#   {verdict: "allow"|"needs_approval"|"deny", reasons: [..], approver_group, approvers: [..],
#    mode: "apply"|"check", autonomy: {configured, effective, change, progress: [..]}}
#   mode "check" is shadow mode (autonomy recommend): the playbook runs with --check --diff.
#   A deny holds in every mode: a denied action does not even run in check mode.
#
# Data (data.yaml, checked at load by policies/data.py): deny_list, approver_groups (by
# risk), action_approver_groups (by action, wins), approvers (group -> members, "*" anyone),
# maintenance (windows + what each action needs outside them, by severity), blast_radius
# (limits by risk), autonomy (promotion rules by level, demotion).
package firebreak.remediation

import rego.v1

levels := ["notify", "recommend", "approve", "autonomous"]

level_rank := {"notify": 0, "recommend": 1, "approve": 2, "autonomous": 3}

action := input.action.action

# --- Autonomy: the catalog's level, moved by the track record --------------------------------

configured := input.action.autonomy

default record := {}

record := input.track_record if is_object(input.track_record)

failures := object.get(record, "failures", 0)

successes := object.get(record, "successes", 0)

demotion := data.firebreak.autonomy.demote

demoted if {
	failures >= demotion.min_failures
	failures / (failures + successes) > demotion.max_failure_rate
	level_rank[configured] > level_rank[object.get(demotion, "floor", "approve")]
}

promotion := data.firebreak.autonomy.promote[configured]

promotion_unmet contains msg if {
	some field, bound in object.get(promotion, "min", {})
	have := object.get(record, field, 0)
	have < bound
	msg := sprintf("%s %v < %v", [field, have, bound])
}

promotion_unmet contains msg if {
	some field, bound in object.get(promotion, "max", {})
	have := object.get(record, field, 0)
	have > bound
	msg := sprintf("%s %v > %v", [field, have, bound])
}

promotion_met contains msg if {
	some field, bound in object.get(promotion, "min", {})
	have := object.get(record, field, 0)
	have >= bound
	msg := sprintf("%s %v >= %v", [field, have, bound])
}

promotion_met contains msg if {
	some field, bound in object.get(promotion, "max", {})
	have := object.get(record, field, 0)
	have <= bound
	msg := sprintf("%s %v <= %v", [field, have, bound])
}

promoted if {
	is_object(promotion)
	level_rank[configured] < 3
	count(promotion_unmet) == 0
	not demoted
}

effective := levels[level_rank[configured] - 1] if {
	demoted
} else := levels[level_rank[configured] + 1] if {
	promoted
} else := configured

change := "demoted" if {
	demoted
} else := "promoted" if {
	promoted
} else := null

autonomy_reasons contains msg if {
	change == "promoted"
	# concat, not sprintf: regopy 1.5 quotes a concat() result passed to sprintf.
	msg := concat("", [
		sprintf("%s promoted %s -> %s by its track record (", [action, configured, effective]),
		concat(", ", sort([m | some m in promotion_met])),
		")",
	])
}

autonomy_reasons contains msg if {
	change == "demoted"
	msg := sprintf(
		"%s demoted %s -> %s by its track record (%v failure(s) in %v run(s), above %v)",
		[action, configured, effective, failures, failures + successes, demotion.max_failure_rate],
	)
}

# Why the class is not promoted yet: shown with the decision, never a reason to act.
progress contains msg if {
	count(promotion_unmet) > 0
	msg := concat("", [
		sprintf("promotion %s -> %s needs ", [configured, levels[level_rank[configured] + 1]]),
		concat(", ", sort([m | some m in promotion_unmet])),
	])
}

autonomy := {
	"configured": configured,
	"effective": effective,
	"change": change,
	"progress": sort(progress),
}

default mode := "apply"

mode := "check" if effective == "recommend"

# --- Maintenance windows × severity ----------------------------------------------------------

open_windows contains w.name if {
	some w in data.firebreak.maintenance.windows
	input.time.weekday in w.days
	# Zero-padded "HH:MM" (policies/data.py checks it; "24:00" ends a day) orders as text, so
	# nothing is parsed: comparing the input's minute number with parsed "HH:MM" numbers kept
	# the weekend window shut before ~01:40 under regopy 1.5 (tests/unit/test_policy_property.py).
	w.start <= input.time.clock
	input.time.clock < w.end
}

default outside_window := "allow"

outside_window := data.firebreak.maintenance.outside_window[action][input.severity] if count(open_windows) == 0

deny_reasons contains msg if {
	outside_window == "deny"
	msg := sprintf("%s at %s only inside a maintenance window, and none is open", [action, input.severity])
}

approval_reasons contains msg if {
	outside_window == "needs_approval"
	msg := sprintf(
		"%s at %s outside every maintenance window: a human must approve",
		[action, input.severity],
	)
}

# --- Blast radius ----------------------------------------------------------------------------

default blast := {"known": false, "size": 0, "services": []}

blast := input.blast_radius if is_object(input.blast_radius)

blast_limits := data.firebreak.blast_radius.limits[input.action.risk]

deny_reasons contains msg if {
	blast.known
	blast.size > blast_limits.deny_above
	msg := sprintf(
		"blast radius %v exceeds %v for a %s-risk action (%s dependents)",
		[blast.size, blast_limits.deny_above, input.action.risk, input.action.target],
	)
}

approval_reasons contains msg if {
	blast.known
	blast.size > blast_limits.approve_above
	msg := sprintf(
		"blast radius %v exceeds %v for a %s-risk action: a human must approve",
		[blast.size, blast_limits.approve_above, input.action.risk],
	)
}

approval_reasons contains msg if {
	not blast.known
	data.firebreak.blast_radius.unknown == "needs_approval"
	msg := sprintf("blast radius of %s unknown (not in the topology): a human must approve", [input.action.target])
}

# --- Deny list, autonomy level, risk ---------------------------------------------------------

deny_reasons contains msg if {
	action in data.firebreak.deny_list.actions
	msg := sprintf("action %s is on the deny list", [action])
}

deny_reasons contains msg if {
	input.action.target in data.firebreak.deny_list.targets
	msg := sprintf("target %s is on the deny list", [input.action.target])
}

deny_reasons contains msg if {
	effective == "notify"
	msg := sprintf("action class %s is notify-only: a human acts", [action])
}

deny_reasons contains msg if {
	not level_rank[configured]
	msg := sprintf("action class %s has an unknown autonomy level %v", [action, configured])
}

approval_reasons contains msg if {
	effective == "approve"
	msg := sprintf("action class %s runs only with approval (autonomy: %s)", [action, effective])
}

approval_reasons contains msg if {
	input.action.risk == "high"
	msg := "high-risk action: a human must approve"
}

approval_reasons contains msg if {
	input.severity == "P1"
	effective == "autonomous"
	msg := "P1 incident: autonomous actions still need a human"
}

# --- Who may approve -------------------------------------------------------------------------

approver_group := g if {
	g := data.firebreak.action_approver_groups[action]
} else := g if {
	g := data.firebreak.approver_groups[input.action.risk]
} else := "sre"

approvers := m if {
	m := data.firebreak.approvers[approver_group]
} else := []

# --- The decision ----------------------------------------------------------------------------

# One rule body that reads every part once: regopy 1.5 does not memoize rules under `with`
# (the unit tests), so an else-chain that re-reads deny_reasons in each branch is slow.
decision := {
	"verdict": chosen.verdict,
	"reasons": sort(chosen.reasons | autonomy_reasons),
	"approver_group": chosen.group,
	"approvers": chosen.approvers,
	"mode": level.mode,
	"autonomy": level.autonomy,
} if {
	level := {"mode": mode, "autonomy": autonomy}
	denied := deny_reasons
	needed := approval_reasons
	group := approver_group
	members := approvers
	# An approval nobody may give is a deny now, not an escalation an hour later.
	nobody := {msg |
		level.mode == "apply"
		count(needed) > 0
		count(members) == 0
		msg := sprintf("needs approval from group %s, which has no members", [group])
	}
	refused := denied | nobody
	branches := [
		{"when": count(refused) > 0, "verdict": "deny", "reasons": refused, "group": null, "approvers": []},
		{
			"when": level.mode == "check",
			"verdict": "allow",
			"reasons": {sprintf(
				"action class %s is in shadow mode (recommend): check mode only, nothing is applied",
				[action],
			)},
			"group": null,
			"approvers": [],
		},
		{
			"when": count(needed) > 0,
			"verdict": "needs_approval",
			"reasons": needed,
			"group": group,
			"approvers": members,
		},
		{
			"when": true,
			"verdict": "allow",
			"reasons": {sprintf("action class %s is autonomous and no rule requires approval", [action])},
			"group": null,
			"approvers": [],
		},
	]
	chosen := [b | some b in branches; b.when][0]
}
