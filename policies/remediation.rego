# May this remediation run, and who must approve it?
#
# input: {incident_id, severity: "P1".."P4", services: [..],
#         action: {action, params, target, risk, autonomy, timeout_seconds}, now}
# result: data.firebreak.remediation.decision =
#         {verdict: "allow"|"needs_approval"|"deny", reasons: [..], approver_group}
package firebreak.remediation

import rego.v1

deny_reasons contains msg if {
	input.action.action in data.firebreak.deny_list.actions
	msg := sprintf("action %s is on the deny list", [input.action.action])
}

deny_reasons contains msg if {
	input.action.target in data.firebreak.deny_list.targets
	msg := sprintf("target %s is on the deny list", [input.action.target])
}

deny_reasons contains msg if {
	input.action.autonomy == "notify"
	msg := sprintf("action class %s is notify-only: a human acts", [input.action.action])
}

approval_reasons contains msg if {
	input.action.autonomy in {"approve", "recommend"}
	msg := sprintf("action class %s runs only with approval (autonomy: %s)", [input.action.action, input.action.autonomy])
}

approval_reasons contains msg if {
	input.action.risk == "high"
	msg := "high-risk action: a human must approve"
}

approval_reasons contains msg if {
	input.severity == "P1"
	input.action.autonomy == "autonomous"
	msg := "P1 incident: autonomous actions still need a human"
}

approver_group := data.firebreak.approver_groups[input.action.risk]

default approver_group := "sre"

decision := {"verdict": "deny", "reasons": sort(deny_reasons), "approver_group": null} if {
	count(deny_reasons) > 0
} else := {"verdict": "needs_approval", "reasons": sort(approval_reasons), "approver_group": approver_group} if {
	count(approval_reasons) > 0
} else := {"verdict": "allow", "reasons": [sprintf("action class %s is autonomous and no rule requires approval", [input.action.action])], "approver_group": null}
