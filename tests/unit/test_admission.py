"""The gate's admission and its seals, as pure functions (policies/admission.py, seals.py).

What the integration tests show end to end (tests/integration/test_gate_attacks.py), here
case by case: each check of the admission refuses with a reason naming what failed.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from integrations.ansible import plain_identifiers, unsafe_vars_yaml
from models.admission import AdmissionMode
from models.agents import ProposedAction
from models.catalog import ActionSpec, CatalogError
from models.incident import (
    AdmitInput,
    ApprovalRecord,
    ApprovalSignal,
    Plan,
    RemediationInput,
    VerifyApprovalInput,
)
from models.policy import PolicyDecision, PolicyVerdict
from policies.admission import (
    NotAdmitted,
    admit,
    attest_approval,
    check_admission,
    seal_decision,
    verify_answer,
)
from policies.seals import ApprovalCodes, Sealer, SealError, load_or_create_key

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
INCIDENT = "incident-prod-checkout"


def key() -> SecretStr:
    return SecretStr(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())


SEALER = Sealer(key())
ACTION = ProposedAction(action="restart_service", params={"service": "checkout"}, target="checkout")
PLAN = Plan(actions=[ACTION])


def decision(
    verdict: PolicyVerdict, approvers: list[str] | None = None, mode: str = "apply"
) -> PolicyDecision:
    raw = PolicyDecision(
        verdict=verdict,
        reasons=["r"],
        policy="firebreak.remediation",
        approver_group="sre" if approvers else None,
        approvers=approvers or [],
        mode="check" if mode == "check" else "apply",
        action=ACTION.action,
        target=ACTION.target,
    )
    return seal_decision(SEALER, INCIDENT, ACTION, raw)


def approval(by: str = "alice", attested: bool = True, plan_hash: str | None = None) -> ApprovalRecord:
    record = ApprovalRecord(
        decision="approved", by=by, reason="", at=NOW, plan_hash=plan_hash or PLAN.digest()
    )
    return attest_approval(SEALER, INCIDENT, record) if attested else record


def ask(mode: AdmissionMode = AdmissionMode.APPLY, **overrides: object) -> AdmitInput:
    fields: dict[str, object] = {
        "incident_id": INCIDENT,
        "plan": PLAN,
        "plan_hash": PLAN.digest(),
        "index": 0,
        "mode": mode,
        "idempotency_key": "k" * 32,
        "decisions": [decision(PolicyVerdict.ALLOW)],
        **overrides,
    }
    return AdmitInput.model_validate(fields)


def test_an_allowed_plan_is_admitted_and_the_admission_covers_exactly_that_run() -> None:
    admission = admit(SEALER, ask(), INCIDENT, NOW)
    assert admission.verdict == "allow" and admission.approver is None and admission.seal
    run = RemediationInput(incident_id=INCIDENT, action=ACTION, idempotency_key="k" * 32, admission=admission)
    assert check_admission(SEALER, run, NOW) == admission
    for change, named in (
        ({"incident_id": "incident-other"}, "incident_id"),
        ({"idempotency_key": "j" * 32}, "idempotency_key"),
        ({"check_mode": True}, "check_mode"),
        ({"action": ACTION.model_copy(update={"params": {"service": "payments"}})}, "action"),
    ):
        with pytest.raises(NotAdmitted, match=named):
            check_admission(SEALER, run.model_copy(update=change), NOW)
    with pytest.raises(NotAdmitted, match="expired"):
        check_admission(SEALER, run, NOW + timedelta(days=1))
    with pytest.raises(NotAdmitted, match="seal does not verify"):
        check_admission(Sealer(key()), run, NOW)
    edited = admission.model_copy(update={"verdict": "approved", "approver": "mallory"})
    with pytest.raises(NotAdmitted, match="seal does not verify"):
        check_admission(SEALER, run.model_copy(update={"admission": edited}), NOW)
    with pytest.raises(NotAdmitted, match="missing"):
        check_admission(SEALER, run.model_copy(update={"admission": None}), NOW)


@pytest.mark.parametrize(
    ("input", "caller", "why"),
    [
        (ask(), "incident-other", "only an incident's own workflow"),
        (ask(plan_hash="0" * 16), INCIDENT, "plan_hash"),
        (ask(index=1), INCIDENT, "index"),
        (ask(decisions=[]), INCIDENT, "0 policy decision"),
        (
            ask(decisions=[decision(PolicyVerdict.ALLOW).model_copy(update={"seal": None})]),
            INCIDENT,
            "not sealed",
        ),
        # A decision sealed for the incident, edited afterwards (deny -> allow): the seal breaks.
        (
            ask(decisions=[decision(PolicyVerdict.DENY).model_copy(update={"verdict": PolicyVerdict.ALLOW})]),
            INCIDENT,
            "not sealed",
        ),
        (ask(decisions=[decision(PolicyVerdict.DENY)]), INCIDENT, "say deny"),
        (ask(decisions=[decision(PolicyVerdict.NEEDS_APPROVAL, ["alice"])]), INCIDENT, "say wait"),
        (
            ask(
                decisions=[decision(PolicyVerdict.NEEDS_APPROVAL, ["alice"])],
                approvals=[approval(attested=False)],
            ),
            INCIDENT,
            "say wait",
        ),
        (
            ask(
                decisions=[decision(PolicyVerdict.NEEDS_APPROVAL, ["alice"])], approvals=[approval(by="bob")]
            ),
            INCIDENT,
            "say wait",
        ),
        (ask(AdmissionMode.CHECK, decisions=[decision(PolicyVerdict.DENY)]), INCIDENT, "not even check mode"),
        (ask(AdmissionMode.ROLLBACK, rollback_of="f" * 32), INCIDENT, "forward"),
        (ask(rollback_of="f" * 32), INCIDENT, "rollback_of"),
    ],
    ids=[
        "another caller",
        "wrong plan hash",
        "no such action",
        "no decisions",
        "unsealed decision",
        "edited decision",
        "denied",
        "no answer",
        "unattested answer",
        "non-member's answer",
        "check mode of a denied plan",
        "rollback without its forward run",
        "apply naming a run to undo",
    ],
)
def test_what_is_not_admitted(input: AdmitInput, caller: str, why: str) -> None:
    with pytest.raises(NotAdmitted, match=why):
        admit(SEALER, input, caller, NOW)


def test_an_attested_member_approval_admits_and_names_the_approver() -> None:
    needs = [decision(PolicyVerdict.NEEDS_APPROVAL, ["alice"])]
    admission = admit(SEALER, ask(decisions=needs, approvals=[approval("alice")]), INCIDENT, NOW)
    assert (admission.verdict, admission.approver) == ("approved", "alice")
    preview = admit(SEALER, ask(AdmissionMode.CHECK, decisions=needs), INCIDENT, NOW)
    assert preview.verdict == "preview" and preview.mode == AdmissionMode.CHECK


def test_a_rollback_needs_the_genuine_admission_of_its_forward_run() -> None:
    forward = admit(SEALER, ask(), INCIDENT, NOW)
    rollback = ask(
        AdmissionMode.ROLLBACK, rollback_of=forward.idempotency_key, forward=forward, idempotency_key="r" * 32
    )
    assert admit(SEALER, rollback, INCIDENT, NOW).verdict == "rollback"
    with pytest.raises(NotAdmitted, match="forward"):
        admit(
            SEALER,
            rollback.model_copy(
                update={"forward": forward.model_copy(update={"index": 0, "seal": "0" * 64})}
            ),
            INCIDENT,
            NOW,
        )
    with pytest.raises(NotAdmitted, match="not for the applied run"):
        admit(SEALER, rollback.model_copy(update={"rollback_of": "x" * 32}), INCIDENT, NOW)
    with pytest.raises(NotAdmitted, match="denies"):
        admit(
            SEALER, rollback.model_copy(update={"decisions": [decision(PolicyVerdict.DENY)]}), INCIDENT, NOW
        )


def test_seals_are_bound_to_their_purpose() -> None:
    payload = {"a": 1}
    seal = SEALER.seal("policy-decision", payload)
    assert SEALER.verify("policy-decision", payload, seal)
    assert not SEALER.verify("admission", payload, seal)
    assert not SEALER.verify("policy-decision", {"a": 2}, seal)
    assert not SEALER.verify("policy-decision", payload, None)
    with pytest.raises(SealError, match="need at least 32"):
        Sealer(SecretStr(base64.urlsafe_b64encode(b"short").decode()))
    assert "key" not in repr(SEALER).replace("<key>", "")


def test_approval_codes() -> None:
    codes = ApprovalCodes(key())
    code = codes.issue(INCIDENT, "abc", "alice@example.com", NOW)
    claims = codes.verify(code, INCIDENT, "abc", NOW)
    assert claims.approver == "alice@example.com" and claims.expires_at > NOW
    for args, why in (
        ((code, "incident-other", "abc", NOW), "issued for incident"),
        ((code, INCIDENT, "xyz", NOW), "issued for plan"),
        ((code, INCIDENT, "abc", NOW + timedelta(hours=1)), "expired"),
        (("not-a-code", INCIDENT, "abc", NOW), "not a Firebreak approval code"),
        (("fbap1.@@@.00", INCIDENT, "abc", NOW), "do not decode"),
        (("x" * 5000, INCIDENT, "abc", NOW), "longer than"),
    ):
        with pytest.raises(SealError, match=why):
            codes.verify(*args)
    with pytest.raises(SealError, match="signature does not verify"):
        ApprovalCodes(key()).verify(code, INCIDENT, "abc", NOW)


def test_a_used_code_is_refused() -> None:
    codes = ApprovalCodes(key())
    code = codes.issue(INCIDENT, PLAN.digest(), "alice", NOW)
    needs = [decision(PolicyVerdict.NEEDS_APPROVAL, ["alice"])]
    signal = ApprovalSignal(by="alice", plan_hash=PLAN.digest(), code=code)
    first = verify_answer(
        SEALER,
        codes,
        VerifyApprovalInput(
            incident_id=INCIDENT, plan_hash=PLAN.digest(), decision="approved", signal=signal, decisions=needs
        ),
        NOW,
    )
    assert first.refused is None and first.record.code_nonce and first.record.authenticated_by == "code"
    again = verify_answer(
        SEALER,
        codes,
        VerifyApprovalInput(
            incident_id=INCIDENT,
            plan_hash=PLAN.digest(),
            decision="approved",
            signal=signal,
            decisions=needs,
            used_nonces=[first.record.code_nonce],
        ),
        NOW,
    )
    assert again.refused == "code: already used for an answer to this incident"
    assert again.record.decision == "refused" and again.record.attestation is None


def test_the_key_file_is_private_and_shared_by_racing_processes(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "admission.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(k.get_secret_value() for k in pool.map(lambda _: load_or_create_key(path), range(16)))
    assert len(keys) == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path], "no temporary files left behind"


def test_values_reach_ansible_under_an_unsafe_root() -> None:
    text = unsafe_vars_yaml({"incident_id": "{{ lookup('pipe','id') }}", "n": 3, "s": "*", "num": "123"})
    assert text.startswith("!unsafe\n")
    loaded = yaml.safe_load(text.removeprefix("!unsafe\n"))
    assert loaded == {"incident_id": "{{ lookup('pipe','id') }}", "n": 3, "s": "*", "num": "123"}
    with pytest.raises(CatalogError, match="not a valid Ansible variable name"):
        unsafe_vars_yaml({"bad-name": "x"})
    with pytest.raises(CatalogError, match="of type object"):
        unsafe_vars_yaml({"x": object()})
    with pytest.raises(CatalogError, match=r"incident_id: .* is not a plain identifier"):
        plain_identifiers({"incident_id": "a b"})
    plain_identifiers({"incident_id": "incident-prod-checkout", "rollback_of": None})


def test_catalog_strings_need_a_pattern_an_enum_or_declared_free_text() -> None:
    base = {
        "name": "x",
        "description": "x",
        "playbook": "x.yml",
        "risk": "low",
        "timeout_seconds": 60,
        "vault_role": "r",
    }
    loose = {"type": "object", "additionalProperties": False, "properties": {"s": {"type": "string"}}}
    with pytest.raises(ValueError, match="needs a pattern or an enum"):
        ActionSpec.model_validate({**base, "params_schema": loose})
    free = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"s": {"type": "string", "x-free-text": True}},
    }
    with pytest.raises(ValueError, match="free text needs a maxLength"):
        ActionSpec.model_validate({**base, "params_schema": free})
    with pytest.raises(ValueError, match="additionalProperties: false"):
        ActionSpec.model_validate({**base, "params_schema": {"type": "object"}})
    free["properties"]["s"]["maxLength"] = 10  # type: ignore[index]
    ActionSpec.model_validate({**base, "params_schema": free})
