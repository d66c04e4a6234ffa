# Unit tests for remediation.rego, run by tests/unit/test_policy_engine.py.
#
# Written for regopy 1.5.2, whose bugs these tests step around:
# - `with input as {...}` (the whole document) segfaults the process once evaluation reaches
#   a rule that calls a builtin (sprintf, count, sort: every rule here). So input is
#   replaced field by field.
# - a rule reference as a `with` value (`with input.action as restart_checkout`) breaks the
#   whole chain: the other overrides are ignored or the result is undefined. So fixtures
#   are bound to locals first (`act := restart_checkout`).
# - a string literal passed to a user function keeps its quotes, in sprintf output and in
#   lookups (and so does a concat() result passed to sprintf). So there are no helper
#   functions: each test spells out its `with` chain.
# Also, regopy's sort() of a set returns a set, which never equals an array, so reasons are
# compared as `[r | some r in d.reasons]`, which means the same in OPA.
#
# Every test replaces every data section the policy reads, so the tests pin the rules and
# not the values in data.yaml; the `test_shipped_*` tests check those values on purpose.
package firebreak.remediation_test

import rego.v1

import data.firebreak.remediation

# A group name per risk, so a test can tell which one the policy chose.
groups := {"low": "sre-oncall", "medium": "sre", "high": "sre-leads"}

members := {"sre-oncall": ["*"], "sre": ["alice", "bob"], "sre-leads": ["lead"]}

no_deny := {"actions": [], "targets": []}

no_windows := {"windows": [], "outside_window": {}}

# Nightly 02:00-05:00 every day; restarts outside it: P1 anything, P2 approval, P4 never.
windows := {
	"windows": [{
		"name": "nightly",
		"days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
		"start": "02:00",
		"end": "05:00",
	}],
	"outside_window": {"restart_service": {"P1": "allow", "P2": "needs_approval", "P4": "deny"}},
}

no_limits := {"limits": {}, "unknown": "allow"}

limits := {"limits": {"medium": {"approve_above": 3, "deny_above": 10}}, "unknown": "allow"}

no_rules := {"promote": {}}

rules := {
	"promote": {
		"approve": {"min": {"successes": 5, "approvals": 5}, "max": {"failures": 0, "wrong": 0}},
		"recommend": {"min": {"shadow_runs": 3, "useful": 2}, "max": {"wrong": 0}},
	},
	"demote": {"min_failures": 1, "max_failure_rate": 0.2, "floor": "approve"},
}

wednesday_noon := {"weekday": "Wednesday", "clock": "12:00"}

wednesday_3am := {"weekday": "Wednesday", "clock": "03:00"}

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

proven := {"successes": 6, "approvals": 6, "failures": 0, "wrong": 0, "shadow_runs": 0, "useful": 0}

test_approve_autonomy_needs_approval_from_the_risk_group if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "needs_approval"
	d.approver_group == "sre"
	d.approvers == ["alice", "bob"]
	d.mode == "apply"
	[r | some r in d.reasons] == ["action class restart_service runs only with approval (autonomy: approve)"]
}

test_approve_autonomy_low_risk_goes_to_the_low_risk_group if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(clear_node_disk, {"autonomy": "approve"})
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "needs_approval"
	d.approver_group == "sre-oncall"
	d.approvers == ["*"]
}

test_recommend_autonomy_is_shadow_mode if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "recommend"})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
	d.mode == "check"
	d.approver_group == null
	d.approvers == []
	[r | some r in d.reasons] == ["action class restart_service is in shadow mode (recommend): check mode only, nothing is applied"]
}

test_recommend_is_shadow_even_when_approval_rules_apply if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(failover_ledger, {"autonomy": "recommend"})
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
	d.mode == "check"
}

test_autonomous_low_risk_is_allowed if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := clear_node_disk
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
	d.approver_group == null
	d.mode == "apply"
	[r | some r in d.reasons] == ["action class clear_disk_space is autonomous and no rule requires approval"]
}

test_autonomous_medium_risk_is_allowed if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P2"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
	d.approver_group == null
}

test_autonomous_high_risk_needs_sre_leads if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := failover_ledger
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "needs_approval"
	d.approver_group == "sre-leads"
	d.approvers == ["lead"]
	[r | some r in d.reasons] == ["high-risk action: a human must approve"]
}

test_p1_autonomous_needs_approval if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := clear_node_disk
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "needs_approval"
	d.approver_group == "sre-oncall"
	[r | some r in d.reasons] == ["P1 incident: autonomous actions still need a human"]
}

test_p1_high_risk_gives_every_reason if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := failover_ledger
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "needs_approval"
	d.approver_group == "sre-leads"
	[r | some r in d.reasons] == [
		"P1 incident: autonomous actions still need a human",
		"high-risk action: a human must approve",
	]
}

test_notify_is_denied if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "notify"})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
	d.approver_group == null
	[r | some r in d.reasons] == ["action class restart_service is notify-only: a human acts"]
}

test_unknown_autonomy_level_is_denied if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "yolo"})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
	[r | some r in d.reasons] == ["action class restart_service has an unknown autonomy level yolo"]
}

test_unlisted_risk_falls_back_to_sre if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"risk": "extreme"})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "needs_approval"
	d.approver_group == "sre"
}

test_deny_listed_action_is_denied_even_when_autonomous if {
	deny := {"actions": ["clear_disk_space"], "targets": []}
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := clear_node_disk
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
	d.approver_group == null
	[r | some r in d.reasons] == ["action clear_disk_space is on the deny list"]
}

test_deny_listed_target_is_denied if {
	deny := {"actions": [], "targets": ["ledger-db"]}
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"target": "ledger-db"})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
	[r | some r in d.reasons] == ["target ledger-db is on the deny list"]
}

test_deny_list_spares_other_actions_and_targets if {
	deny := {"actions": ["failover_database"], "targets": ["ledger-db"]}
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := clear_node_disk
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
}

test_deny_wins_over_every_approval_reason if {
	deny := {"actions": ["failover_database"], "targets": ["ledger-db"]}
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := failover_ledger
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
	d.approver_group == null
	d.approvers == []
	[r | some r in d.reasons] == [
		"action failover_database is on the deny list",
		"target ledger-db is on the deny list",
	]
}

test_deny_list_stops_shadow_runs_too if {
	deny := {"actions": ["restart_service"], "targets": []}
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "recommend"})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
}

test_outside_window_p2_restart_needs_approval if {
	deny := no_deny
	g := groups
	m := members
	w := windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P2"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "needs_approval"
	d.approver_group == "sre"
	[r | some r in d.reasons] == ["restart_service at P2 outside every maintenance window: a human must approve"]
}

test_inside_window_p2_restart_is_allowed if {
	deny := no_deny
	g := groups
	m := members
	w := windows
	b := no_limits
	au := no_rules
	t := wednesday_3am
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P2"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
}

test_outside_window_p4_restart_is_denied if {
	deny := no_deny
	g := groups
	m := members
	w := windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
	[r | some r in d.reasons] == ["restart_service at P4 only inside a maintenance window, and none is open"]
}

test_inside_window_p4_restart_is_allowed if {
	deny := no_deny
	g := groups
	m := members
	w := windows
	b := no_limits
	au := no_rules
	t := wednesday_3am
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
}

test_outside_window_p1_restart_needs_nothing_more if {
	deny := no_deny
	g := groups
	m := members
	w := windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "needs_approval"
	[r | some r in d.reasons] == ["action class restart_service runs only with approval (autonomy: approve)"]
}

test_window_end_is_exclusive if {
	deny := no_deny
	g := groups
	m := members
	w := windows
	b := no_limits
	au := no_rules
	t := {"weekday": "Monday", "clock": "05:00"}
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
}

test_window_start_is_inclusive if {
	deny := no_deny
	g := groups
	m := members
	w := windows
	b := no_limits
	au := no_rules
	t := {"weekday": "Monday", "clock": "02:00"}
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
}

test_window_only_on_its_days if {
	deny := no_deny
	g := groups
	m := members
	w := {"windows": [{"name": "weekend", "days": ["Saturday", "Sunday"], "start": "00:00", "end": "24:00"}], "outside_window": {"restart_service": {"P4": "deny"}}}
	b := no_limits
	au := no_rules
	t := {"weekday": "Friday", "clock": "23:59"}
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
}

test_weekend_window_covers_the_whole_day if {
	deny := no_deny
	g := groups
	m := members
	w := {"windows": [{"name": "weekend", "days": ["Saturday", "Sunday"], "start": "00:00", "end": "24:00"}], "outside_window": {"restart_service": {"P4": "deny"}}}
	b := no_limits
	au := no_rules
	t := {"weekday": "Sunday", "clock": "23:59"}
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
}

test_actions_without_a_window_rule_ignore_windows if {
	deny := no_deny
	g := groups
	m := members
	w := windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := clear_node_disk
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
}

test_severity_without_a_window_rule_is_unrestricted if {
	deny := no_deny
	g := groups
	m := members
	w := windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
}

test_blast_radius_within_limit_is_allowed if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	br := {"known": true, "size": 3, "services": ["a", "b", "c"]}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.blast_radius as br
	d.verdict == "allow"
}

test_blast_radius_over_approval_limit_needs_approval if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	br := {"known": true, "size": 4, "services": ["a", "b", "c", "d"]}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.blast_radius as br
	d.verdict == "needs_approval"
	[r | some r in d.reasons] == ["blast radius 4 exceeds 3 for a medium-risk action: a human must approve"]
}

test_blast_radius_over_deny_limit_is_denied if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	br := {"known": true, "size": 11, "services": []}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.blast_radius as br
	d.verdict == "deny"
	[r | some r in d.reasons] == ["blast radius 11 exceeds 10 for a medium-risk action (checkout dependents)"]
}

test_blast_radius_limits_are_per_risk if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := clear_node_disk
	br := {"known": true, "size": 40, "services": []}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.blast_radius as br
	d.verdict == "allow"
}

test_unknown_blast_radius_is_allowed_by_default if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
}

test_unknown_blast_radius_can_require_approval if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := {"limits": {}, "unknown": "needs_approval"}
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	br := {"known": false, "size": 0, "services": []}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.blast_radius as br
	d.verdict == "needs_approval"
	[r | some r in d.reasons] == ["blast radius of checkout unknown (not in the topology): a human must approve"]
}

test_proven_record_promotes_approve_to_autonomous if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	tr := proven
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "allow"
	d.autonomy.effective == "autonomous"
	d.autonomy.change == "promoted"
	count(d.autonomy.progress) == 0
	[r | some r in d.reasons] == [
		"action class restart_service is autonomous and no rule requires approval",
		"restart_service promoted approve -> autonomous by its track record (approvals 6 >= 5, failures 0 <= 0, successes 6 >= 5, wrong 0 <= 0)",
	]
}

test_one_failure_withholds_promotion if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	tr := object.union(proven, {"failures": 1})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "needs_approval"
	d.autonomy.change == null
	d.autonomy.effective == "approve"
	[p | some p in d.autonomy.progress] == ["promotion approve -> autonomous needs failures 1 > 0"]
}

test_too_few_runs_withhold_promotion if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	tr := object.union(proven, {"successes": 4, "approvals": 4})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "needs_approval"
	[p | some p in d.autonomy.progress] == ["promotion approve -> autonomous needs approvals 4 < 5, successes 4 < 5"]
}

test_promotion_is_only_by_rule if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	tr := proven
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "needs_approval"
	d.autonomy.effective == "approve"
	count(d.autonomy.progress) == 0
}

test_no_track_record_keeps_the_catalog_level if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	tr := null
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "needs_approval"
	d.autonomy.change == null
}

test_failures_demote_autonomous_to_approve if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	tr := {"successes": 3, "failures": 2}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "needs_approval"
	d.autonomy.effective == "approve"
	d.autonomy.change == "demoted"
	[r | some r in d.reasons] == [
		"action class restart_service runs only with approval (autonomy: approve)",
		"restart_service demoted autonomous -> approve by its track record (2 failure(s) in 5 run(s), above 0.2)",
	]
}

test_failure_rate_at_the_bound_does_not_demote if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	tr := {"successes": 4, "failures": 1}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "allow"
	d.autonomy.change == null
}

test_demotion_stops_at_the_floor if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	tr := {"successes": 0, "failures": 3}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "needs_approval"
	d.autonomy.effective == "approve"
	d.autonomy.change == null
}

test_demotion_below_approve_when_the_floor_allows if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := object.union(rules, {"demote": {"min_failures": 1, "max_failure_rate": 0.2, "floor": "notify"}})
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	tr := {"successes": 0, "failures": 3}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "allow"
	d.mode == "check"
	d.autonomy.effective == "recommend"
}

test_useful_shadow_runs_promote_recommend_to_approve if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "recommend"})
	tr := {"shadow_runs": 3, "useful": 2, "wrong": 0}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "needs_approval"
	d.mode == "apply"
	d.autonomy.change == "promoted"
	d.autonomy.effective == "approve"
}

test_a_wrong_verdict_keeps_shadow_mode if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "recommend"})
	tr := {"shadow_runs": 5, "useful": 4, "wrong": 1}
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.mode == "check"
	d.autonomy.change == null
}

test_promotion_never_passes_autonomous if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	tr := proven
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "allow"
	d.autonomy.effective == "autonomous"
	d.autonomy.change == null
}

test_promoted_class_at_p1_still_needs_a_human if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	tr := proven
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
		with input.track_record as tr
	d.verdict == "needs_approval"
	d.autonomy.change == "promoted"
}

test_action_approver_group_wins_over_risk_group if {
	deny := no_deny
	g := groups
	m := members
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {"restart_service": "sre-leads"}
	act := restart_checkout
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.approver_group == "sre-leads"
	d.approvers == ["lead"]
}

test_approval_from_a_group_without_members_is_a_deny if {
	deny := no_deny
	g := groups
	m := {"sre-leads": ["lead"]}
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := restart_checkout
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "deny"
	[r | some r in d.reasons] == ["needs approval from group sre, which has no members"]
}

test_shadow_mode_needs_no_approvers if {
	deny := no_deny
	g := groups
	m := {}
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := object.union(restart_checkout, {"autonomy": "recommend"})
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
	d.mode == "check"
}

test_an_allowed_action_needs_no_approvers if {
	deny := no_deny
	g := groups
	m := {}
	w := no_windows
	b := no_limits
	au := no_rules
	t := wednesday_noon
	ag := {}
	act := clear_node_disk
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with data.firebreak.deny_list as deny
		with data.firebreak.approver_groups as g
		with data.firebreak.approvers as m
		with data.firebreak.maintenance as w
		with data.firebreak.blast_radius as b
		with data.firebreak.autonomy as au
		with data.firebreak.action_approver_groups as ag
		with input.time as t
	d.verdict == "allow"
}

test_shipped_restart_at_p4_outside_windows_is_denied if {
	act := restart_checkout
	t := wednesday_noon
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with input.time as t
	d.verdict == "deny"
	[r | some r in d.reasons] == ["restart_service at P4 only inside a maintenance window, and none is open"]
}

test_shipped_restart_at_p4_in_the_nightly_window_needs_approval if {
	act := restart_checkout
	t := wednesday_3am
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with input.time as t
	d.verdict == "needs_approval"
	d.approver_group == "sre"
	[r | some r in d.reasons] == ["action class restart_service runs only with approval (autonomy: approve)"]
}

test_shipped_restart_at_p1_outside_windows_only_needs_approval if {
	act := restart_checkout
	t := wednesday_noon
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with input.time as t
	d.verdict == "needs_approval"
	[r | some r in d.reasons] == ["action class restart_service runs only with approval (autonomy: approve)"]
}

test_shipped_weekend_is_a_window if {
	act := restart_checkout
	t := {"weekday": "Saturday", "clock": "12:00"}
	d := remediation.decision
		with input.severity as "P4"
		with input.action as act
		with input.time as t
	d.verdict == "needs_approval"
}

test_shipped_high_risk_goes_to_sre_leads if {
	act := failover_ledger
	t := wednesday_3am
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with input.time as t
	d.approver_group == "sre-leads"
	d.approvers == ["lead@example.com"]
}

test_shipped_medium_risk_blast_radius_over_three_needs_approval if {
	act := object.union(restart_checkout, {"autonomy": "autonomous"})
	t := wednesday_3am
	br := {"known": true, "size": 4, "services": ["a", "b", "c", "d"]}
	d := remediation.decision
		with input.severity as "P1"
		with input.action as act
		with input.time as t
		with input.blast_radius as br
	d.verdict == "needs_approval"
	[r | some r in d.reasons] == [
		"P1 incident: autonomous actions still need a human",
		"blast radius 4 exceeds 3 for a medium-risk action: a human must approve",
	]
}

test_shipped_nothing_is_promoted_without_a_record if {
	act := restart_checkout
	t := wednesday_3am
	d := remediation.decision
		with input.severity as "P3"
		with input.action as act
		with input.time as t
	d.autonomy.effective == "approve"
	[p | some p in d.autonomy.progress] == ["promotion approve -> autonomous needs approvals 0 < 5, successes 0 < 5"]
}
