"""Remediation over SSH on a real host, with per-action certificates from a real OpenBao SSH CA.

The host is tests/sshhost.py: Debian's sshd (trusting only the CA, one principal per action
user) in front of supervisord running `demo-svc`, which records each start of a process, so
every count here is read on the host itself. Ansible runs through the real activity and
ansible-runner; the full-flow test runs a whole incident on the Temporal dev server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import hvac.exceptions
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.remediation import RemediationActivities
from api.app import create_app
from integrations.inventory import load_inventory
from integrations.ssh_ca import SSH_MOUNT, SshCertificateAuthority, SshCredential, ssh_role_name
from integrations.vault import ActionCredentials
from models.agents import ProposedAction
from models.catalog import Catalog
from models.constants import SIGNAL_APPROVE
from models.incident import ApprovalSignal, Outcome, Phase, RemediationInput, RemediationResult
from policies.catalog import load_catalog
from policies.seals import Sealer
from runtime.settings import PROJECT_ROOT, Settings
from runtime.tracing import tracer_provider
from tests.admitted import admission_key, admit
from tests.conftest import VaultServer, free_port, vault_client
from tests.integration.conftest import (
    RecordingCredentials,
    Stack,
    StackFactory,
    awaiting,
    open_incident,
    resolve,
)
from tests.secret_scan import find_secrets, stored_text
from tests.sshhost import SERVICE, SshTestbed
from worker import build_worker

pytestmark = pytest.mark.integration

CATALOG = load_catalog(PROJECT_ROOT / "playbooks")
DAY = 86_400


def with_timeout(catalog: Catalog, action: str, seconds: int) -> Catalog:
    """The catalog with one action's timeout (so its certificates' TTL) shortened."""
    spec = catalog.actions[action].model_copy(update={"timeout_seconds": seconds})
    return catalog.model_copy(update={"actions": {**catalog.actions, action: spec}})


class RecordingCA(SshCertificateAuthority):
    """The real CA client, remembering what it signed so tests can try to reuse it."""

    def __init__(self, addr: str, token: SecretStr) -> None:
        super().__init__(addr, token)
        self.issued: list[SshCredential] = []

    def issue(self, action: str, host: str, user: str, ttl_seconds: int, key_id: str) -> SshCredential:
        credential = super().issue(action, host, user, ttl_seconds, key_id)
        self.issued.append(credential)
        return credential


def ssh_activities(
    settings: Settings,
    vault: VaultServer,
    bed: SshTestbed,
    *,
    catalog: Catalog = CATALOG,
    ca: SshCertificateAuthority | None = None,
    runtime: Path | None = None,
) -> RemediationActivities:
    """The real activity, as the worker builds it with FIREBREAK_INVENTORY_FILE set."""
    return RemediationActivities(
        catalog=catalog,
        sealer=Sealer(admission_key(settings)),
        credentials=ActionCredentials(vault.addr, vault.worker_token),
        vault_addr=vault.addr,
        target_state_dir=settings.resolved_target_state_dir(),
        runtime_dir=runtime,
        inventory=load_inventory(bed.inventory_path, set(catalog.actions)),
        ssh_ca=ca or SshCertificateAuthority(vault.addr, vault.worker_token),
    )


def action_input(
    action: str, target: str = SERVICE, check_mode: bool = False, **params: Any
) -> RemediationInput:
    return RemediationInput(
        incident_id=f"incident-ssh-{secrets.token_hex(4)}",
        action=ProposedAction(action=action, params={"service": target, **params}, target=target),
        idempotency_key=secrets.token_hex(16),
        check_mode=check_mode,
    )


async def run(
    activities: RemediationActivities, settings: Settings, run: RemediationInput
) -> RemediationResult:
    result: RemediationResult = await ActivityEnvironment().run(
        activities.run_playbook, admit(run, admission_key(settings))
    )
    return result


def key_dir(tmp_path: Path, credential: SshCredential) -> Path:
    """Write a recorded key and certificate where a test's own `ssh` can use them."""
    directory = tmp_path / f"key-{secrets.token_hex(3)}"
    directory.mkdir(mode=0o700)
    key = directory / "id"
    key.write_text(credential.private_key.get_secret_value())
    os.chmod(key, 0o600)
    (directory / "id-cert.pub").write_text(credential.certificate.get_secret_value() + "\n")
    return directory


def signs_requested(vault: VaultServer) -> int:
    assert vault.audit_log is not None
    text = vault.audit_log.read_text() if vault.audit_log.exists() else ""
    return sum(
        1 for line in text.splitlines() if '"type":"request"' in line and f'"path":"{SSH_MOUNT}/sign/' in line
    )


def host_snapshot(bed: SshTestbed) -> dict[str, Any]:
    """Everything an action could change on the host."""
    files = sorted(
        (str(p.relative_to(bed.root)), p.read_bytes() if p.is_file() else b"")
        for base in (bed.state_dir, bed.log_dir, bed.root / "supervisor" / "conf.d")
        for p in base.rglob("*")
    )
    return {"starts": bed.starts(), "status": bed.status(), "numprocs": bed.numprocs(), "files": files}


@pytest.fixture
def bed(ssh_testbed: SshTestbed) -> Iterator[SshTestbed]:
    """The session's host, back at one running process of demo-svc, logs empty, after each test."""
    ssh_testbed.wait_running(ssh_testbed.numprocs())
    yield ssh_testbed
    if ssh_testbed.numprocs() != 1:
        subprocess.run(
            [str(ssh_testbed.scale_helper), str(ssh_testbed.supervisor_config), SERVICE, "1"],
            check=True,
            capture_output=True,
        )
    ssh_testbed.wait_running(1)
    for path in ssh_testbed.log_dir.iterdir():
        if path.name != "stdout.log":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def rotated_logs(bed: SshTestbed) -> dict[str, bool]:
    """Plant logs as logrotate leaves them (owned by the service); name -> should be removed."""
    plan = {
        "app.log": (False, 30),  # live log, old: kept
        "app.log.1": (True, 30),
        "app.log.2.gz": (True, 30),
        "app.old": (True, 30),
        "fresh.log.1": (False, 0),  # rotated, but younger than the bound: kept
        "notes.txt": (False, 30),
        "archive/app.log.3.gz": (False, 30),  # not in log_dir itself: kept
    }
    for name, (_, age_days) in plan.items():
        path = bed.log_dir / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("x" * 1000)
        shutil.chown(path, "fbt-svc", "fbt-svc")
        old = time.time() - age_days * DAY
        os.utime(path, (old, old))
    return {name: removed for name, (removed, _) in plan.items()}


# --- the actions, on the host -------------------------------------------------------------------


async def test_restart_over_ssh_restarts_once_and_its_certificate_then_expires(
    settings: Settings, vault: VaultServer, bed: SshTestbed, tmp_path: Path
) -> None:
    ttl = 25
    ca = RecordingCA(vault.addr, vault.worker_token)
    runtime = tmp_path / "runtime"
    activities = ssh_activities(
        settings, vault, bed, catalog=with_timeout(CATALOG, "restart_service", ttl), ca=ca, runtime=runtime
    )
    before = bed.starts()
    (old_pid,) = [pid for _, pid in bed.status().values()]
    restart = action_input("restart_service")

    result = await run(activities, settings, restart)

    assert result.status == "successful" and result.changed, result.summary
    (credential,) = ca.issued
    assert result.credential_accessor == f"ssh-cert {credential.serial}"
    assert result.credential_ttl_seconds == ttl and not result.credential_revoked
    assert (credential.host, credential.user, credential.principal) == (
        "host-a",
        "fbt-restart",
        "restart_service@host-a",
    )
    after = bed.starts()
    assert len(after) == len(before) + 1, "one restart, counted by the service itself"
    (new_pid,) = [pid for _, pid in bed.wait_running(1).values()]
    assert new_pid != old_pid and after[-1].startswith(f"start {new_pid} ")
    # The key and certificate lived only in the run's private directory, which is gone.
    assert runtime.is_dir() and list(runtime.iterdir()) == []

    # Nowhere else: no file the run could have left (scratch, tmpfs, Ansible's and ssh's
    # dirs, the host's) holds the private key.
    assert files_holding(key_body(credential)) == []

    # The same action again (a retried activity): the host's record holds its key: no restart.
    again = await run(activities, settings, restart)
    assert again.status == "successful" and not again.changed
    assert len(bed.starts()) == len(after)

    # The certificate dies at its TTL (OpenBao cannot revoke SSH certificates; sshd checks
    # validity at each login): a login with the very key and certificate then fails.
    keys = key_dir(tmp_path, credential)
    valid_before = next(
        line.split(" to ")[1].strip()
        for line in subprocess.run(
            ["ssh-keygen", "-L", "-f", str(keys / "id-cert.pub")], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if line.strip().startswith("Valid:")
    )
    expiry = time.mktime(time.strptime(valid_before, "%Y-%m-%dT%H:%M:%S"))
    assert expiry - time.time() <= ttl, "TTL no longer than the action's timeout"
    await asyncio.sleep(max(0.0, expiry - time.time()) + 2)
    late = bed.ssh("host-a", "fbt-restart", keys, ["true"])
    assert late.returncode == 255 and "Permission denied" in late.stderr, late
    assert "expired" in bed.hosts["host-a"].log.read_text(), "sshd refused it as expired"
    assert len(bed.starts()) == len(after)


def key_body(credential: SshCredential) -> str:
    """A distinctive piece of the private key: what a copy of it anywhere would contain."""
    lines = credential.private_key.get_secret_value().splitlines()
    body = "".join(line for line in lines if not line.startswith("-----"))
    # Not the start: every OpenSSH ed25519 key begins with the same header.
    return body[len(body) // 2 : len(body) // 2 + 48]


def files_holding(needle: str) -> list[str]:
    """Files under the places a key could be left behind that contain `needle` (first line)."""
    roots = [Path(tempfile.gettempdir()), Path("/dev/shm"), Path("/var/lib/firebreak-test-hosts")]
    roots += [Path.home() / ".ansible", Path.home() / ".ssh"]
    found = []
    for root in roots:
        # os.walk, not rglob: other tests (xdist workers) create and remove directories under
        # /tmp meanwhile, and os.walk skips one that vanished where rglob raises.
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory) / name
                try:
                    if (
                        path.is_file()
                        and path.stat().st_size < 1_000_000
                        and needle in path.read_text(errors="ignore")
                    ):
                        found.append(str(path))
                except OSError:
                    continue
    return found


async def test_a_service_on_two_hosts_gets_one_certificate_per_host_one_host_at_a_time(
    settings: Settings, vault: VaultServer, bed: SshTestbed
) -> None:
    ca = RecordingCA(vault.addr, vault.worker_token)
    before = len(bed.starts())
    result = await run(
        ssh_activities(settings, vault, bed, ca=ca),
        settings,
        action_input("restart_service", target="both-svc"),
    )
    assert result.status == "successful" and result.changed, result.summary
    assert sorted(c.principal for c in ca.issued) == ["restart_service@host-a", "restart_service@host-b"]
    assert (
        len({c.serial for c in ca.issued}) == 2
        and len({c.private_key.get_secret_value() for c in ca.issued}) == 2
    )
    assert result.credential_accessor == "ssh-cert " + ",".join(c.serial for c in ca.issued)
    # One restart through each host (both front the same supervisord here).
    assert len(bed.starts()) == before + 2
    host_logs = {name: host.log.read_text() for name, host in bed.hosts.items()}
    for credential in ca.issued:
        assert f"serial {int(credential.serial, 16)})" in host_logs[credential.host], credential


async def test_a_certificate_for_one_action_runs_nothing_else_and_reaches_no_other_host(
    vault: VaultServer, bed: SshTestbed, tmp_path: Path
) -> None:
    credential = SshCertificateAuthority(vault.addr, vault.worker_token).issue(
        "restart_service", "host-a", "fbt-restart", 60, "test-confinement"
    )
    keys = key_dir(tmp_path, credential)
    planted = rotated_logs(bed)
    numprocs, starts = bed.numprocs(), len(bed.starts())

    # Control: it does open its own account, on its own host.
    own = bed.ssh("host-a", "fbt-restart", keys, ["id", "-un"])
    assert own.returncode == 0 and own.stdout.strip() == "fbt-restart", own
    # Not another action's account on the same host, nor its own account on another host.
    for host, user in [("host-a", "fbt-scale"), ("host-a", "fbt-clean"), ("host-b", "fbt-restart")]:
        refused = bed.ssh(host, user, keys, ["id"])
        assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr, (host, user)
    # Logged in, it runs only the restart: not the scale helper, not another supervisorctl
    # command, and it cannot delete the service's logs.
    config = str(bed.supervisor_config)
    for command in (
        ["sudo", "-n", str(bed.scale_helper), config, SERVICE, "3"],
        ["sudo", "-n", "/usr/bin/supervisorctl", "-c", config, "stop", f"{SERVICE}:*"],
        ["sudo", "-n", "/usr/bin/supervisorctl", "-c", config, "update"],
        ["sudo", "-n", "/bin/sh", "-c", "id"],
        ["rm", "-f", str(bed.log_dir / "app.log.1")],
        ["/usr/bin/supervisorctl", "-c", config, "stop", f"{SERVICE}:*"],
    ):
        denied = bed.ssh("host-a", "fbt-restart", keys, command)
        assert denied.returncode != 0, (command, denied.stdout)
    assert bed.numprocs() == numprocs and len(bed.starts()) == starts
    assert all((bed.log_dir / name).exists() for name in planted)

    # OpenBao signs nothing else with the worker's token: not this action for another host
    # (through this host's role), not another principal, not longer than the action's timeout.
    with vault_client(vault.addr, vault.worker_token.get_secret_value()) as worker:
        role = ssh_role_name("restart_service", "host-a")
        for body in (
            {"valid_principals": "restart_service@host-b"},
            {"valid_principals": "scale_service@host-a"},
            {"valid_principals": "fbt-restart"},
            {"ttl": f"{CATALOG.actions['restart_service'].timeout_seconds + 1}s"},
        ):
            with pytest.raises(hvac.exceptions.InvalidRequest):
                worker.adapter.post(
                    f"/v1/{SSH_MOUNT}/sign/{role}",
                    json={"public_key": credential_public(credential), "cert_type": "user", **body},
                )
        with pytest.raises(hvac.exceptions.Forbidden):  # nor touch the CA's roles or key
            worker.adapter.post(f"/v1/{SSH_MOUNT}/roles/{role}", json={"allowed_users": "*"})


def credential_public(credential: SshCredential) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(credential.private_key.get_secret_value().encode(), None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


async def test_scale_over_ssh_sets_the_process_count_and_rolls_back(
    settings: Settings, vault: VaultServer, bed: SshTestbed
) -> None:
    activities = ssh_activities(settings, vault, bed)
    scale = action_input("scale_service", replicas=3)
    result = await run(activities, settings, scale)
    assert result.status == "successful" and result.changed, result.summary
    assert bed.numprocs() == 3 and len(bed.wait_running(3)) == 3

    undo = scale.model_copy(
        update={"idempotency_key": secrets.token_hex(16), "rollback_of": scale.idempotency_key}
    )
    rolled = await run(activities, settings, undo)
    assert rolled.status == "successful" and rolled.rollback_of == scale.idempotency_key, rolled.summary
    assert bed.numprocs() == 1 and len(bed.wait_running(1)) == 1


async def test_clear_disk_space_over_ssh_removes_only_old_rotated_files(
    settings: Settings, vault: VaultServer, bed: SshTestbed
) -> None:
    planted = rotated_logs(bed)
    result = await run(ssh_activities(settings, vault, bed), settings, action_input("clear_disk_space"))
    assert result.status == "successful" and result.changed, result.summary
    left = {name: (bed.log_dir / name).exists() for name in planted}
    assert left == {name: not removed for name, removed in planted.items()}


@pytest.mark.parametrize(
    ("action", "params", "shown"),
    [
        ("restart_service", {}, "restarted demo-svc"),
        ("scale_service", {"replicas": 4}, "numprocs 1 -> 4"),
        ("clear_disk_space", {}, "app.log.2.gz"),
    ],
)
async def test_check_mode_over_ssh_shows_the_change_and_changes_nothing(
    settings: Settings, vault: VaultServer, bed: SshTestbed, action: str, params: dict[str, Any], shown: str
) -> None:
    rotated_logs(bed)
    before = host_snapshot(bed)
    result = await run(
        ssh_activities(settings, vault, bed), settings, action_input(action, check_mode=True, **params)
    )
    assert result.status == "successful" and result.check_mode, result.summary
    shown_text = "\n".join(f"{c.task}: {c.diff}" for c in result.changes)
    assert shown in shown_text, shown_text
    assert host_snapshot(bed) == before, "check mode changed the host"


# --- refusals -----------------------------------------------------------------------------------


async def test_a_target_not_in_the_inventory_is_refused_before_anything_is_signed(
    settings: Settings, vault: VaultServer, bed: SshTestbed
) -> None:
    activities = ssh_activities(settings, vault, bed)
    signs, starts = signs_requested(vault), len(bed.starts())
    for target in ("checkout-unknown", "host-a", "localhost"):
        with pytest.raises(ApplicationError) as refused:
            await run(activities, settings, action_input("restart_service", target=target))
        assert refused.value.type == "CatalogError" and refused.value.non_retryable
        assert "action.target" in refused.value.message and "not in the inventory" in refused.value.message
    assert signs_requested(vault) == signs, "nothing was signed for a target outside the inventory"
    assert len(bed.starts()) == starts


async def test_openbao_down_fails_naming_vault_and_nothing_runs(
    settings: Settings, vault: VaultServer, bed: SshTestbed, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    activities = ssh_activities(settings, vault, bed, ca=SshCertificateAuthority(dead, vault.worker_token))
    before = host_snapshot(bed)
    for check_mode in (False, True):
        with pytest.raises(ApplicationError) as failed:
            await run(activities, settings, action_input("restart_service", check_mode=check_mode))
        assert failed.value.type == "VaultUnavailable" and not failed.value.non_retryable
        assert f"Vault at {dead} unavailable" in failed.value.message
    assert host_snapshot(bed) == before


async def test_openbao_down_escalates_the_incident_naming_vault(
    make_stack: StackFactory, bed: SshTestbed
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    stack = await make_stack(inventory_file=bed.inventory_path, vault_addr=dead)
    starts = len(bed.starts())
    incident_id = await open_incident(stack, "other-svc")  # on host-b: its own incident id
    state = await stack.wait_for(incident_id, awaiting)
    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by="alice", reason="ok", plan_hash=state.plan_hash)
    )
    result = await asyncio.wait_for(stack.handle(incident_id).result(), timeout=120)
    assert result.outcome == Outcome.ESCALATED, result
    assert f"Vault at {dead} unavailable" in result.summary, result.summary
    assert len(bed.starts()) == starts


# --- the whole incident: nothing secret is stored ------------------------------------------------


@asynccontextmanager
async def traced_stack(
    client: Client, settings: Settings, vault: VaultServer, provider: TracerProvider
) -> AsyncIterator[Stack]:
    """The worker and API as make_stack builds them, the worker tracing to `provider`."""
    worker = build_worker(
        client, settings, RecordingCredentials(vault.addr, vault.worker_token), tracer_provider=provider
    )
    task = asyncio.create_task(worker.run())

    async def client_factory() -> Client:
        return client

    app = create_app(settings, client_factory)
    assert settings.api_token is not None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        try:
            yield Stack(
                client=client,
                settings=settings,
                http=http,
                credentials=RecordingCredentials(vault.addr, vault.worker_token),
                worker=worker,
                headers={"Authorization": f"Bearer {settings.api_token.get_secret_value()}"},
            )
        finally:
            await worker.shutdown()
            await task


async def test_ssh_keys_and_certificates_never_reach_history_logs_or_spans(
    client: Client,
    settings: Settings,
    vault: VaultServer,
    bed: SshTestbed,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    issued: list[SshCredential] = []
    real_issue = SshCertificateAuthority.issue

    def recording_issue(self: SshCertificateAuthority, *args: Any) -> SshCredential:
        credential = real_issue(self, *args)
        issued.append(credential)
        return credential

    monkeypatch.setattr(SshCertificateAuthority, "issue", recording_issue)
    exporter = InMemorySpanExporter()
    runtime = tmp_path / "runtime"
    configured = settings.model_copy(
        update={"inventory_file": bed.inventory_path, "ansible_runtime_dir": runtime}
    )
    provider = tracer_provider(configured, "worker", exporter=exporter)
    assert provider is not None
    async with traced_stack(client, configured, vault, provider) as stack:
        starts = len(bed.starts())
        incident_id = await open_incident(stack, SERVICE)
        state = await stack.wait_for(incident_id, awaiting)
        await stack.handle(incident_id).signal(
            SIGNAL_APPROVE, ApprovalSignal(by="alice", reason="ok", plan_hash=state.plan_hash)
        )
        await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
        await resolve(stack, SERVICE)
        result = await asyncio.wait_for(stack.handle(incident_id).result(), timeout=120)
        assert result.outcome == Outcome.REMEDIATED, result
        assert len(bed.starts()) == starts + 1, "the preview restarted nothing; the approved run once"
        texts = [await stored_text(await stack.handle(incident_id).fetch_history())]
        async for child in client.list_workflows(f"WorkflowId STARTS_WITH '{incident_id}-'"):
            history = await client.get_workflow_handle(child.id, run_id=child.run_id).fetch_history()
            texts.append(await stored_text(history))
    provider.shutdown()

    stored = "\n".join(texts)
    # One certificate for the check-mode preview, one for the approved run; none kept.
    assert [c.principal for c in issued] == ["restart_service@host-a"] * 2
    assert all(f"ssh-cert {c.serial}" in stored for c in issued), "the scan reads decoded payloads"
    found: dict[str, str] = {}
    for index, credential in enumerate(issued):
        private = credential.private_key.get_secret_value()
        body = "".join(line for line in private.splitlines() if not line.startswith("-----"))
        found[f"private key {index}"] = private
        found[f"private key body {index}"] = body[:64]
        found[f"certificate {index}"] = credential.certificate.get_secret_value().split()[1]
    spans = list(exporter.get_finished_spans())
    assert any(s.name == "RunActivity:run_playbook" for s in spans)
    logged = caplog.text + "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "signed ssh certificate serial=" in logged
    # Each place a leak could sit, as a file of its own, so a finding names where it was.
    worker_log = tmp_path / "worker.log"
    worker_log.write_text(logged)
    spans_file = tmp_path / "spans.json"
    spans_file.write_text("\n".join(s.to_json() for s in spans))
    assert vault.audit_log is not None
    files = [
        worker_log,
        spans_file,
        vault.audit_log,
        vault.audit_log.parent / "bao.log",
        *(h.log for h in bed.hosts.values()),
    ]
    assert find_secrets(found, stored, files) == []
    assert runtime.is_dir() and list(runtime.iterdir()) == []
