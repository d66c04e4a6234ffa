"""Run a catalog playbook with ansible-runner, holding a Vault credential only while it runs.

Every run reports what it changed (or, in check mode, would change) task by task, from
Ansible's `--diff` (`RemediationResult.changes`): that is what an approver sees before
saying yes, and what shadow mode records. Tasks that touch the credential are `no_log`, so
Ansible censors their results and no diff of theirs ever exists. A run with `rollback_of`
runs the action's catalog rollback playbook instead.

A check-mode run holds no credential at all: nothing is minted for a plan nobody approved
(or for shadow mode), and the playbooks skip their credential tasks in check mode
(`ansible_check_mode`). A playbook whose dry run needs to read its target through an API
would need a read-only role of its own for that.

Secrets: the token reaches Ansible as `VAULT_TOKEN` in the child's environment, never on
the command line or in extravars. ansible-runner still dumps the environment into its
artifact dir, so the private data dir lives on tmpfs when there is one, is mode 0700, is
deleted in a `finally`, and the token is revoked in the same `finally` — a leftover is
a dead token in RAM. Playbook tasks that touch the token are `no_log`.

Over SSH (an inventory is configured): the target must resolve to inventory hosts, or the
run is refused before anything is signed. For each host a fresh ed25519 key pair is made in
memory and OpenBao's SSH CA signs it for that action and host only, with a TTL of the action's
timeout; key and certificate are written only into the private dir (0600 inside 0700) and
die with it. A check-mode run over SSH gets a certificate too (it must log in to see what
would change); the gate admitted that run. OpenBao cannot revoke SSH certificates: the
result says `credential_revoked=False`, and the certificate expires at its TTL.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ansible_runner
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ansible_data import plain_identifiers, unsafe_vars_yaml
from activities.credentials import ActionCredentials, action_secret_api_path
from activities.errors import CredentialDenied, FirebreakError, PlaybookError, VaultUnavailable
from integrations.inventory import ANSIBLE_SSH_ENV, write_ansible_inventory
from integrations.ssh_ca import SigningDenied, SigningUnavailable, SshCertificateAuthority, SshCredential
from models.catalog import Catalog, CatalogError
from models.incident import PlannedChange, RemediationInput, RemediationResult
from models.inventory import Inventory, InventoryHost
from policies.admission import NotAdmitted, check_admission
from policies.seals import Sealer

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_SECONDS = 5.0
# Diffs go into workflow history and the approval request: bounded.
MAX_CHANGES = 20
MAX_DIFF_CHARS = 2000


def render_diff(diff: Any) -> str:
    """One task's `--diff` (a dict, or a list of them) as text: unified for file content."""
    parts: list[str] = []
    for item in diff if isinstance(diff, list) else [diff]:
        if not isinstance(item, Mapping):
            continue
        if isinstance(item.get("prepared"), str):
            parts.append(item["prepared"])
            continue
        before, after = item.get("before"), item.get("after")
        if isinstance(before, str) and isinstance(after, str):
            parts.append(
                "".join(
                    difflib.unified_diff(
                        before.splitlines(keepends=True),
                        after.splitlines(keepends=True),
                        fromfile=str(item.get("before_header") or "before"),
                        tofile=str(item.get("after_header") or "after"),
                    )
                )
            )
        elif isinstance(before, Mapping) and isinstance(after, Mapping):
            parts.extend(
                f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
                for key in sorted({*before, *after})
                if before.get(key) != after.get(key)
            )
    text = "\n".join(p.rstrip("\n") for p in parts if p)
    return text if len(text) <= MAX_DIFF_CHARS else text[: MAX_DIFF_CHARS - 12] + "\n[truncated]"


@dataclass
class _Progress:
    """Filled by ansible-runner's callbacks on its thread, read by the heartbeat loop."""

    tasks_done: int = 0
    current_task: str = ""
    failed_tasks: list[str] = field(default_factory=list)
    changes: list[PlannedChange] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)

    def on_event(self, event: Mapping[str, Any]) -> bool:
        data = event.get("event_data") or {}
        kind = event.get("event")
        if kind == "playbook_on_task_start":
            self.current_task = str(data.get("task", ""))
        elif kind in ("runner_on_ok", "runner_on_skipped"):
            self.tasks_done += 1
            res = data.get("res") or {}
            # A no_log task's res is censored: it never carries a diff.
            if kind == "runner_on_ok" and res.get("changed") and len(self.changes) < MAX_CHANGES:
                diff = render_diff(res.get("diff"))
                self.changes.append(PlannedChange(task=str(data.get("task", "?")), diff=diff or "(changed)"))
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            self.failed_tasks.append(str(data.get("task", "?")))
        return True  # keep the event (artifacts are deleted with the private dir anyway)


def _heartbeat_accessor(details: Sequence[Any]) -> str | None:
    """The credential accessor an earlier attempt recorded in its last heartbeat, if any."""
    last = details[-1] if details else None
    accessor = last.get("accessor") if isinstance(last, Mapping) else None
    return accessor if isinstance(accessor, str) and accessor else None


def _runtime_root(configured: Path | None) -> Path:
    if configured is not None:
        configured.mkdir(parents=True, exist_ok=True)
        return configured
    shm = Path("/dev/shm")  # noqa: S108 - RAM-backed on purpose; mkdtemp gives a private 0700 dir
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


class RemediationActivities:
    def __init__(
        self,
        catalog: Catalog,
        sealer: Sealer,
        credentials: ActionCredentials,
        vault_addr: str,
        target_state_dir: Path,
        runtime_dir: Path | None = None,
        inventory: Inventory | None = None,
        ssh_ca: SshCertificateAuthority | None = None,
    ) -> None:
        self._catalog = catalog
        self._sealer = sealer
        self._credentials = credentials
        self._vault_addr = vault_addr
        self._target_state_dir = target_state_dir
        self._runtime_dir = runtime_dir
        if inventory is not None and ssh_ca is None:
            raise ValueError("an inventory needs an SSH CA to sign its logins")
        self._inventory = inventory
        self._ssh_ca = ssh_ca

    @activity.defn
    async def run_playbook(self, input: RemediationInput) -> RemediationResult:
        """Check the gate's admission, mint a credential, run the playbook, revoke the credential."""
        action = input.action
        try:
            # Before anything else, and above all before Vault: only an admitted run goes on.
            check_admission(self._sealer, input, datetime.now(UTC))
        except NotAdmitted as exc:
            activity.logger.warning("refused a run of %s: %s", action.action, exc)
            raise ApplicationError(str(exc), type="NotAdmitted", non_retryable=True) from None
        try:
            spec = self._catalog.validate_params(action.action, action.params)
            if input.rollback_of is not None and spec.rollback is None:
                raise CatalogError(f"action {spec.name!r} declares no rollback playbook")
            plain_identifiers(
                {
                    "incident_id": input.incident_id,
                    "idempotency_key": input.idempotency_key,
                    "rollback_of": input.rollback_of,
                    "action.target": action.target,
                }
            )
            hosts = None
            if self._inventory is not None:
                # Over SSH: refused here, before anything is signed, if the target is not a
                # service in the inventory (InventoryError is a CatalogError: never retried).
                hosts = self._inventory.resolve(action.target, spec.name)
                playbook = spec.ssh_playbook if input.rollback_of is None else spec.ssh_rollback
                if playbook is None:
                    raise CatalogError(f"action {spec.name!r} declares no SSH playbook for this run")
            else:
                playbook = spec.playbook if input.rollback_of is None else str(spec.rollback)
        except CatalogError as exc:
            raise ApplicationError(str(exc), type="CatalogError", non_retryable=True) from None

        started = time.monotonic()
        info = activity.info()
        # A killed earlier attempt could not revoke its token: it left the accessor in its
        # last heartbeat, so this attempt revokes it before minting its own.
        orphan = _heartbeat_accessor(info.heartbeat_details)
        if orphan is not None:
            await asyncio.to_thread(self._credentials.revoke_accessor, orphan, spec.timeout_seconds)
        credential = None
        logins: list[tuple[str, InventoryHost, SshCredential]] = []
        if hosts is not None:
            logins = await self._sign_logins(hosts, spec.name, spec.timeout_seconds, input)
        elif not input.check_mode:
            try:
                credential = await asyncio.to_thread(
                    self._credentials.issue, spec, input.incident_id, input.idempotency_key, info.attempt
                )
            except FirebreakError as exc:
                raise exc.to_application_error() from None
            activity.heartbeat(
                {"tasks_done": 0, "task": "credential issued", "accessor": credential.accessor}
            )

        serials = [login.serial for _, _, login in logins]
        progress = _Progress()
        revoked = False
        try:
            extravars: dict[str, Any] = {
                **action.params,
                "incident_id": input.incident_id,
                "idempotency_key": input.idempotency_key,
                # Tells one execution of the effect from another (tests count them on the target).
                "firebreak_execution": f"attempt {activity.info().attempt} run {uuid.uuid4().hex[:12]}",
                "target_state_dir": str(self._target_state_dir),
                "vault_addr": self._vault_addr,
                "vault_secret_path": action_secret_api_path(spec.name),
                "ansible_python_interpreter": sys.executable,
            }
            if hosts is not None:
                # Each host's interpreter is its own (inventory); the service's names are too.
                del extravars["ansible_python_interpreter"]
                service = self._inventory.services[action.target] if self._inventory else None
                extravars["program"] = (service.program if service else None) or action.target
                extravars["log_dir"] = service.log_dir if service else None
            if input.rollback_of is not None:
                extravars["rollback_of"] = input.rollback_of
            envvars = {
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
            }
            if credential is not None:
                envvars["VAULT_TOKEN"] = credential.token.get_secret_value()
            if logins:
                envvars.update(ANSIBLE_SSH_ENV)
            runner_task = asyncio.ensure_future(
                asyncio.to_thread(
                    self._run_ansible, playbook, extravars, envvars, input.check_mode, progress, logins
                )
            )
            try:
                while not runner_task.done():
                    activity.heartbeat(
                        {
                            "tasks_done": progress.tasks_done,
                            "task": progress.current_task,
                            "accessor": credential.accessor if credential else None,
                        }
                    )
                    await asyncio.wait({runner_task}, timeout=HEARTBEAT_INTERVAL_SECONDS)
            except asyncio.CancelledError:
                progress.cancel.set()
                await asyncio.shield(runner_task)
                raise
            try:
                status, changed = runner_task.result()
            except FirebreakError as exc:
                raise exc.to_application_error() from None
        finally:
            if credential is not None:
                revoked = await asyncio.to_thread(self._credentials.revoke, credential)
            logins.clear()  # the keys' last reference in this activity

        duration = time.monotonic() - started
        # Over SSH the "accessor" is the certificates' serials (ids, not secrets), as sshd logs them.
        ssh_serials = ("ssh-cert " + ",".join(serials)) if serials else None
        ssh_ttl = spec.timeout_seconds if serials else None
        summary = (
            f"{spec.name}{' rollback' if input.rollback_of else ''} on {action.target}: {status}"
            f"{' (check mode)' if input.check_mode else ''}, "
            f"{'changed' if changed else 'no change'}, {progress.tasks_done} tasks ok"
        )
        if progress.failed_tasks:
            summary += f", failed: {', '.join(progress.failed_tasks)}"
        activity.logger.info("playbook finished: %s", summary)
        return RemediationResult(
            action=spec.name,
            target=action.target,
            status=status if status in ("successful", "failed", "timeout", "canceled") else "failed",
            changed=changed,
            check_mode=input.check_mode,
            idempotency_key=input.idempotency_key,
            credential_accessor=credential.accessor if credential else ssh_serials,
            credential_ttl_seconds=credential.ttl_seconds if credential else ssh_ttl,
            credential_revoked=revoked,
            duration_seconds=round(duration, 3),
            summary=summary,
            failed_tasks=progress.failed_tasks,
            changes=progress.changes,
            rollback_of=input.rollback_of,
            rollback_available=spec.rollback is not None,
        )

    async def _sign_logins(
        self, hosts: list[tuple[str, InventoryHost]], action: str, ttl_seconds: int, input: RemediationInput
    ) -> list[tuple[str, InventoryHost, SshCredential]]:
        """One fresh key pair and certificate per host, for this action only; nothing is kept."""
        assert self._ssh_ca is not None  # checked in __init__ when there is an inventory
        logins = []
        for name, host in hosts:
            try:
                login = await asyncio.to_thread(
                    self._ssh_ca.issue,
                    action,
                    name,
                    host.users[action],
                    ttl_seconds,
                    f"{input.incident_id}:{input.idempotency_key}:{activity.info().attempt}",
                )
            except SigningUnavailable as exc:
                raise VaultUnavailable(str(exc)).to_application_error() from None
            except SigningDenied as exc:
                raise CredentialDenied(str(exc)).to_application_error() from None
            logins.append((name, host, login))
        activity.heartbeat({"tasks_done": 0, "task": "ssh certificates signed", "accessor": None})
        return logins

    def _run_ansible(
        self,
        playbook: str,
        extravars: dict[str, Any],
        envvars: dict[str, str],
        check_mode: bool,
        progress: _Progress,
        logins: Sequence[tuple[str, InventoryHost, SshCredential]] = (),
    ) -> tuple[str, bool]:
        private_dir = tempfile.mkdtemp(prefix="firebreak-run-", dir=_runtime_root(self._runtime_dir))
        try:
            os.chmod(private_dir, 0o700)
            # Every value reaches Ansible as data: a vars file whose strings are all `!unsafe`,
            # never ansible-runner's extravars (which Ansible would render as templates).
            vars_file = Path(private_dir) / "firebreak-vars.yml"
            vars_file.write_text(unsafe_vars_yaml(extravars))
            cmdline = f"-e @{shlex.quote(str(vars_file))}" + (" --check --diff" if check_mode else "")
            # Over SSH: the keys, certificates and inventory go into this private dir, only.
            inventory = str(write_ansible_inventory(Path(private_dir), logins)) if logins else None
            runner = ansible_runner.run(
                private_data_dir=private_dir,
                inventory=inventory,
                project_dir=str(self._catalog.directory),
                playbook=playbook,
                envvars=envvars,
                cmdline=cmdline,
                suppress_env_files=True,
                quiet=True,
                event_handler=progress.on_event,
                cancel_callback=progress.cancel.is_set,
                timeout=None,
            )
            if runner.status in ("error",) or runner.rc is None:
                raise PlaybookError(f"ansible-runner could not run {playbook}: status {runner.status}")
            stats = runner.stats or {}
            changed = any((stats.get("changed") or {}).values())
            return str(runner.status), changed
        finally:
            shutil.rmtree(private_dir, ignore_errors=True)
