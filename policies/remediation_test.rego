# Unit tests for remediation.rego, run by tests/unit/test_policy_engine.py.
#
# Written for regopy 1.5.2, whose bugs these tests step around:
# - `with input as {...}` (the whole document) segfaults the process once evaluation reaches
#   a rule that calls a builtin (sprintf, count, sort: every rule here). So input is
#   replaced field by field; the policy reads only input.severity and input.action.
# - a rule reference as a `with` value (`with input.action as restart_checkout`) breaks the
#   whole chain: the other overrides are ignored or the result is undefined. So fixtures
#   are bound to locals first (`act := restart_checkout`).
# - a string literal passed to a user function keeps its quotes, in sprintf output and in
#   lookups. So there are no helper functions: each test spells out its `with` chain.
# Also, regopy's sort() of a set returns a set, which never equals an array, so reasons are
# compared as `[r | some r in d.reasons]`, which means the same in OPA.
package firebreak.remediation_test

import rego.v1

import data.firebreak.remediation

# A group name per risk, so a test can tell which one the policy chose.
groups := {"low": "sre-oncall", "medium": "sre", "high": "sre-leads"}

no_deny := {"actions": [], "targets": []}

restart_checkout := {
	"action": "restart_service",
	"params": {"service": "checkout"},
	"target": "checkout",
	"risk": "medium",
	"autonomy": "approve",
	"timeout_seconds": 300,
}

clear_node_disk := {
	"action": "clear_disk_space",
	"params": {"service": "node", "older_than_days": 7},
	"target": "node",
	"risk": "low",
	"autonomy": "autonomous",
	"timeout_seconds": 120,
}

failover_ledger := {
	"action": "failover_database",
	"params": {"service": "ledger-db"},
	"target": "ledger-db",
	"risk": "high",
	"autonomy": "autonomous",
	"timeout_seconds": 600,
}

test_approve_autonomy_needs_approval_from_the_risk_group if {
	act := restart_checkout
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "needs_approval"
	d.approver_group == "sre"
	[r | some r in d.reasons] == ["action class restart_service runs only with approval (autonomy: approve)"]
}

test_approve_autonomy_low_risk_goes_to_the_low_risk_group if {
	act := object.union(clear_node_disk, {"autonomy": "approve"})
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "needs_approval"
	d.approver_group == "sre-oncall"
}

test_recommend_autonomy_needs_approval if {
	act := object.union(restart_checkout, {"autonomy": "recommend"})
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "needs_approval"
	d.approver_group == "sre"
	[r | some r in d.reasons] == ["action class restart_service runs only with approval (autonomy: recommend)"]
}

test_autonomous_low_risk_is_allowed if {
	act := clear_node_disk
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "allow"
	d.approver_group == null
	[r | some r in d.reasons] == ["action class clear_disk_space is autonomous and no rule requires approval"]
}

test_autonomous_medium_risk_is_allowed if {
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P2"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "allow"
	d.approver_group == null
}

test_autonomous_high_risk_needs_sre_leads if {
	act := failover_ledger
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "needs_approval"
	d.approver_group == "sre-leads"
	[r | some r in d.reasons] == ["high-risk action: a human must approve"]
}

test_p1_autonomous_needs_approval if {
	act := clear_node_disk
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "needs_approval"
	d.approver_group == "sre-oncall"
	[r | some r in d.reasons] == ["P1 incident: autonomous actions still need a human"]
}

test_p1_high_risk_gives_every_reason if {
	act := failover_ledger
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "needs_approval"
	d.approver_group == "sre-leads"
	[r | some r in d.reasons] == [
		"P1 incident: autonomous actions still need a human",
		"high-risk action: a human must approve",
	]
}

test_notify_is_denied if {
	act := object.union(restart_checkout, {"autonomy": "notify"})
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "deny"
	d.approver_group == null
	[r | some r in d.reasons] == ["action class restart_service is notify-only: a human acts"]
}

test_deny_listed_action_is_denied_even_when_autonomous if {
	act := clear_node_disk
	deny := {"actions": ["clear_disk_space"], "targets": []}
	g := groups
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "deny"
	d.approver_group == null
	[r | some r in d.reasons] == ["action clear_disk_space is on the deny list"]
}

test_deny_listed_target_is_denied if {
	act := object.union(restart_checkout, {"target": "ledger-db"})
	deny := {"actions": [], "targets": ["ledger-db"]}
	g := groups
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "deny"
	d.approver_group == null
	[r | some r in d.reasons] == ["target ledger-db is on the deny list"]
}

test_deny_list_spares_other_actions_and_targets if {
	act := clear_node_disk
	deny := {"actions": ["failover_database"], "targets": ["ledger-db"]}
	g := groups
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "allow"
}

test_deny_wins_over_every_approval_reason if {
	act := failover_ledger
	deny := {"actions": ["failover_database"], "targets": ["ledger-db"]}
	g := groups
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "deny"
	d.approver_group == null
	[r | some r in d.reasons] == [
		"action failover_database is on the deny list",
		"target ledger-db is on the deny list",
	]
}

test_unlisted_risk_falls_back_to_sre if {
	act := object.union(restart_checkout, {"risk": "extreme"})
	deny := no_deny
	g := groups
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
	d.verdict == "needs_approval"
	d.approver_group == "sre"
}
