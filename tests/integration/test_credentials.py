"""Least privilege on a real OpenBao: an action's token reads its own secret and nothing else,
lives no longer than the action's timeout, dies when revoked, and no secret value reaches
the worker's logs or the runtime scratch space."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import hvac
import hvac.exceptions
import pytest

from integrations.vault import ActionCredentials, action_secret_api_path, action_secret_path
from models.constants import SIGNAL_APPROVE
from models.incident import ApprovalSignal, Outcome, Phase
from policies.catalog import load_catalog
from runtime.settings import PROJECT_ROOT
from tests.conftest import VaultServer, vault_client
from tests.integration.conftest import StackFactory, awaiting, open_incident, resolve, unique_service

pytestmark = pytest.mark.integration

CATALOG = load_catalog(PROJECT_ROOT / "playbooks")


def secret_of(vault: VaultServer, action: str) -> str:
    with vault.root() as root:
        response = root.secrets.kv.v2.read_secret_version(
            path=action_secret_path(action), mount_point="secret", raise_on_deleted_version=True
        )
    return str(response["data"]["data"]["api_key"])


@pytest.mark.parametrize("action", sorted(CATALOG.actions))
def test_an_action_token_reads_its_own_secret_and_nothing_else(vault: VaultServer, action: str) -> None:
    credentials = ActionCredentials(vault.addr, vault.worker_token)
    spec = CATALOG.get(action)
    credential = credentials.issue(spec, "incident-cred-test", f"key-{action}")
    token = credential.token.get_secret_value()
    assert 0 < credential.ttl_seconds <= spec.timeout_seconds
    try:
        with httpx.Client(base_url=vault.addr, headers={"X-Vault-Token": token}, timeout=10) as http:
            own = http.get(f"/v1/{action_secret_api_path(action)}")
            assert own.status_code == 200
            assert own.json()["data"]["data"]["api_key"] == secret_of(vault, action)
            for other in sorted(set(CATALOG.actions) - {action}):
                denied = http.get(f"/v1/{action_secret_api_path(other)}")
                assert denied.status_code == 403, f"{action}'s token read {other}'s secret"
            # Nor can it write its own secret, list secrets, or mint more tokens.
            write = http.post(f"/v1/{action_secret_api_path(action)}", json={"data": {"api_key": "x"}})
            assert write.status_code == 403
            assert http.request("LIST", "/v1/secret/metadata/firebreak/actions").status_code == 403
            assert http.post("/v1/auth/token/create", json={"ttl": "1h"}).status_code == 403
        with vault_client(vault.addr, token) as own, pytest.raises(hvac.exceptions.Forbidden):
            own.secrets.kv.v2.read_secret_version(
                path=action_secret_path(sorted(set(CATALOG.actions) - {action})[0]),
                mount_point="secret",
                raise_on_deleted_version=True,
            )
    finally:
        assert credentials.revoke(credential)
    with vault_client(vault.addr, token) as revoked, pytest.raises(hvac.exceptions.Forbidden):
        revoked.auth.token.lookup_self()


def test_the_worker_token_reads_no_action_secret(vault: VaultServer) -> None:
    with httpx.Client(
        base_url=vault.addr, headers={"X-Vault-Token": vault.worker_token.get_secret_value()}, timeout=10
    ) as http:
        for action in sorted(CATALOG.actions):
            assert http.get(f"/v1/{action_secret_api_path(action)}").status_code == 403


async def test_worker_logs_hold_no_secret_value(
    make_stack: StackFactory, vault: VaultServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger of the in-process worker, at every level
    runtime = tmp_path / "ansible-runtime"
    stack = await make_stack(ansible_runtime_dir=runtime)
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="alice", reason="ok", plan_hash=state.plan_hash)
    )
    await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    await resolve(stack, service)
    assert (await stack.handle(incident_id).result()).outcome == Outcome.REMEDIATED

    (credential,) = stack.credentials.issued
    secrets = {
        "action token": credential.token.get_secret_value(),
        "worker token": vault.worker_token.get_secret_value(),
        **{f"{a} secret": secret_of(vault, a) for a in CATALOG.actions},
    }
    logged = caplog.text + "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    # The scan sees the worker's logs: the credential's lifecycle is logged, by accessor.
    assert f"issued credential accessor={credential.accessor}" in logged
    assert f"revoked credential accessor={credential.accessor}" in logged
    assert "playbook finished: restart_service" in logged
    for name, value in secrets.items():
        assert value not in logged, f"the {name} is in the worker's logs"
    # ansible-runner's private data dir (where it dumps the env) is gone after each run.
    assert runtime.is_dir() and list(runtime.iterdir()) == []
