"""The remediation activity: admission, a Vault credential held only while the playbook runs.

The Temporal side of a run: check the gate's admission before anything else, validate what
reaches Ansible, mint the credential, heartbeat while `integrations.ansible` runs the
playbook, revoke in a `finally`, and map failures with `activities.errors`. A run with
`rollback_of` runs the action's catalog rollback playbook instead. The result carries what
the run changed (or, in check mode, would change) task by task (`RemediationResult.changes`):
what an approver sees before saying yes, and what shadow mode records.

A check-mode run holds no credential at all: nothing is minted for a plan nobody approved
(or for shadow mode), and the playbooks skip their credential tasks in check mode
(`ansible_check_mode`). A playbook whose dry run needs to read its target through an API
would need a read-only role of its own for that.

Check-mode runs on this machine share Ansible runs (integrations/previews.py): once its
admission is verified and its values validated, a preview joins a batch of previews of the
same playbook, as a host of its own whose vars are its own values only, and gets its own
host's result. Sharing costs no privilege because there is none to share: no token is
minted for a check-mode run, so the shared run's environment holds no credential at all.
Those runs are capped per worker; real runs and rollbacks never wait for them. Over SSH a
check-mode run needs its own certificates, so it stays one run per request (not shared, not
capped): one Ansible process holding several actions' keys would widen what each can reach.

Real runs (and SSH dry runs) take a run slot first (`max_concurrent_runs` per worker) and
only then mint their credential, so a queued run holds no token and a token's TTL is not
spent waiting. Their Ansible threads have an executor of their own, so the short OpenBao
calls never queue behind long playbooks in the default thread pool; and every wait (a slot,
OpenBao) heartbeats, so a slow step under load is not mistaken for a dead worker.

The token is revoked in the same `finally` that deletes the run's private dir (see
integrations/ansible.py), so a leftover is a dead token in RAM. A killed attempt leaves its
accessor in its last heartbeat, and the next attempt revokes it first.

Over SSH (an inventory is configured): the target must resolve to inventory hosts, or the
run is refused before anything is signed. For each host a fresh ed25519 key pair is made in
memory and OpenBao's SSH CA signs it for that action and host only, with a TTL of the action's
timeout (integrations/ssh_ca.py); key and certificate are written only into the run's private
dir (integrations/ansible_ssh.py) and die with it. A check-mode run over SSH gets a
certificate too (it must log in to see what would change); the gate admitted that run.
OpenBao cannot revoke SSH certificates: the result says `credential_revoked=False`, and the
certificate expires at its TTL.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity

from activities.errors import DOMAIN_ERRORS, to_application_error
from integrations.ansible import PlaybookProgress, PlaybookRunner, plain_identifiers
from integrations.ansible_ssh import SshLogin
from integrations.previews import PreviewBatcher, PreviewLimits
from integrations.ssh_ca import SshCertificateAuthority
from integrations.vault import ActionCredentials, action_secret_api_path
from models.catalog import ActionSpec, Catalog, CatalogError
from models.incident import RemediationInput, RemediationResult
from models.inventory import Inventory, InventoryError, InventoryHost
from policies.admission import NotAdmitted, check_admission
from policies.seals import Sealer

HEARTBEAT_INTERVAL_SECONDS = 5.0
# Real runs (and SSH dry runs) at once per worker unless configured.
DEFAULT_MAX_CONCURRENT_RUNS = 4
# OpenBao threads beyond one per run slot: revoking tokens that killed attempts left behind.
VAULT_SPARE_THREADS = 4
T = TypeVar("T")
# A check-mode run's values that are the same for every request of an action: a shared run's
# extra vars. Everything else (params, incident, key, execution) is each request's own.
SHARED_PREVIEW_VARS = ("target_state_dir", "vault_addr", "vault_secret_path")


async def _beating(step: Awaitable[T], details: Callable[[], dict[str, Any]]) -> T:
    """Await `step`, heartbeating `details()` every interval meanwhile.

    Cancellation cancels the step as a plain await would (a thread keeps running to its end).
    """
    task = asyncio.ensure_future(step)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_INTERVAL_SECONDS)
            if done:
                return task.result()
            activity.heartbeat(details())
    except asyncio.CancelledError:
        task.cancel()
        raise


def _heartbeat_accessor(details: Sequence[Any]) -> str | None:
    """The credential accessor an earlier attempt recorded in its last heartbeat, if any."""
    last = details[-1] if details else None
    accessor = last.get("accessor") if isinstance(last, Mapping) else None
    return accessor if isinstance(accessor, str) and accessor else None


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
        preview_limits: PreviewLimits | None = None,
        max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS,
    ) -> None:
        if max_concurrent_runs < 1:
            raise ValueError("max_concurrent_runs must be at least 1")
        self._catalog = catalog
        self._sealer = sealer
        self._credentials = credentials
        self._vault_addr = vault_addr
        self._target_state_dir = target_state_dir
        # Public for benches and tests: they count the Ansible runs and the shared ones at once.
        self.runner = PlaybookRunner(catalog.directory, runtime_dir)
        self.previews = PreviewBatcher(self.runner, preview_limits or PreviewLimits())
        self._run_slots = asyncio.Semaphore(max_concurrent_runs)
        self._run_threads = ThreadPoolExecutor(max_concurrent_runs, thread_name_prefix="firebreak-ansible")
        # OpenBao calls get threads of their own too: on the loop's default pool (6 threads on
        # two cores) they queued behind memory retrieval and log mining under a storm. Each run
        # makes at most one call at a time; the extra threads are for earlier attempts' orphans.
        self._vault_threads = ThreadPoolExecutor(
            max_concurrent_runs + VAULT_SPARE_THREADS, thread_name_prefix="firebreak-vault"
        )
        if inventory is not None and ssh_ca is None:
            raise ValueError("an inventory needs an SSH CA to sign its logins")
        self._inventory = inventory
        self._ssh_ca = ssh_ca

    def _vault_call(self, call: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`call(*args)` on this worker's OpenBao threads (a blocking hvac request)."""
        return asyncio.get_running_loop().run_in_executor(self._vault_threads, functools.partial(call, *args))

    @activity.defn
    async def run_playbook(self, input: RemediationInput) -> RemediationResult:
        """Check the gate's admission, mint a credential, run the playbook, revoke the credential."""
        try:
            return await self._run_playbook(input)
        except DOMAIN_ERRORS as exc:
            raise to_application_error(exc) from None

    async def _run_playbook(self, input: RemediationInput) -> RemediationResult:
        action = input.action
        try:
            # Before anything else, and above all before Vault: only an admitted run goes on.
            check_admission(self._sealer, input, datetime.now(UTC))
        except NotAdmitted as exc:
            activity.logger.warning("refused a run of %s: %s", action.action, exc)
            raise
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
        hosts: list[tuple[str, InventoryHost]] | None = None
        if self._inventory is None:
            playbook = spec.playbook if input.rollback_of is None else str(spec.rollback)
        else:
            # Over SSH: refused here, before anything is signed, if the target is not a service
            # in the inventory. To the workflow and its retry policy that is the same refusal as
            # an unknown action: a CatalogError, never retried.
            try:
                hosts = self._inventory.resolve(action.target, spec.name)
            except InventoryError as exc:
                raise CatalogError(str(exc)) from None
            ssh_playbook = spec.ssh_playbook if input.rollback_of is None else spec.ssh_rollback
            if ssh_playbook is None:
                raise CatalogError(f"action {spec.name!r} declares no SSH playbook for this run")
            playbook = ssh_playbook

        started = time.monotonic()
        info = activity.info()
        # A killed earlier attempt could not revoke its token: it left the accessor in its
        # last heartbeat, so this attempt revokes it before minting its own.
        orphan = _heartbeat_accessor(info.heartbeat_details)
        if orphan is not None:
            # Heartbeats name the orphan until it is gone: a kill now leaves it to the next attempt.
            await _beating(
                self._vault_call(self._credentials.revoke_accessor, orphan, spec.timeout_seconds),
                lambda: {"tasks_done": 0, "task": "revoking an earlier attempt's token", "accessor": orphan},
            )
        shared = input.check_mode and self._inventory is None
        if shared:
            return await self._run(input, spec, playbook, hosts, started, shared=True)
        slot = asyncio.ensure_future(self._run_slots.acquire())
        try:
            await _beating(
                slot, lambda: {"tasks_done": 0, "task": "waiting for a run slot", "accessor": None}
            )
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():  # got it just as the cancel came
                self._run_slots.release()
            raise
        try:
            return await self._run(input, spec, playbook, hosts, started, shared=False)
        finally:
            self._run_slots.release()

    async def _run(
        self,
        input: RemediationInput,
        spec: ActionSpec,
        playbook: str,
        hosts: list[tuple[str, InventoryHost]] | None,
        started: float,
        *,
        shared: bool,
    ) -> RemediationResult:
        """Mint what the run needs, run it (heartbeating), revoke, and describe the result."""
        action = input.action
        info = activity.info()
        credential = None
        logins: list[SshLogin] = []
        if hosts is not None:
            logins = await self._sign_logins(hosts, spec.name, spec.timeout_seconds, input)
        elif not input.check_mode:
            credential = await _beating(
                self._vault_call(
                    self._credentials.issue, spec, input.incident_id, input.idempotency_key, info.attempt
                ),
                lambda: {"tasks_done": 0, "task": "asking OpenBao for a credential", "accessor": None},
            )
            activity.heartbeat(
                {"tasks_done": 0, "task": "credential issued", "accessor": credential.accessor}
            )

        serials = [login.serial for _, _, login in logins]
        progress = PlaybookProgress()
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
            }
            if input.rollback_of is not None:
                extravars["rollback_of"] = input.rollback_of
            if self._inventory is not None:
                # The service's supervisor program and log dir come from the inventory, never
                # from the alert.
                service = self._inventory.services[action.target]
                extravars["program"] = service.program or action.target
                extravars["log_dir"] = service.log_dir
            if shared:
                # The values every preview of this action shares; the rest are this request's own.
                common = {name: extravars.pop(name) for name in SHARED_PREVIEW_VARS}
                work: Awaitable[tuple[str, bool]] = self.previews.preview(
                    playbook, common, extravars, progress
                )
            else:
                work = asyncio.get_running_loop().run_in_executor(
                    self._run_threads,
                    functools.partial(
                        self.runner.run,
                        playbook,
                        extravars,
                        credential.token if credential else None,
                        input.check_mode,
                        progress,
                        logins,
                    ),
                )
            runner_task = asyncio.ensure_future(work)
            try:
                # Heartbeats go on while a preview waits for its batch or a free slot, too.
                while not runner_task.done():
                    activity.heartbeat(
                        {
                            "tasks_done": progress.tasks_done,
                            "task": progress.current_task or ("waiting for a preview slot" if shared else ""),
                            "accessor": credential.accessor if credential else None,
                        }
                    )
                    await asyncio.wait({runner_task}, timeout=HEARTBEAT_INTERVAL_SECONDS)
            except asyncio.CancelledError:
                progress.cancel.set()
                if shared:
                    # Leaves its batch; a shared run goes on for the other previews in it.
                    runner_task.cancel()
                    await asyncio.wait({runner_task})
                else:
                    await asyncio.shield(runner_task)
                raise
            status, changed = runner_task.result()
        finally:
            if credential is not None:
                held = credential  # heartbeats name it until it is revoked
                revoked = await _beating(
                    self._vault_call(self._credentials.revoke, held),
                    lambda: {
                        "tasks_done": progress.tasks_done,
                        "task": "revoking",
                        "accessor": held.accessor,
                    },
                )
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
    ) -> list[SshLogin]:
        """One fresh key pair and certificate per host, for this action only; nothing is kept.

        OpenBao down or refusing raises VaultUnavailable or CredentialDenied (integrations.errors).
        """
        assert self._ssh_ca is not None  # checked in __init__ when there is an inventory
        logins: list[SshLogin] = []
        for name, host in hosts:
            login = await self._vault_call(
                self._ssh_ca.issue,
                action,
                name,
                host.users[action],
                ttl_seconds,
                f"{input.incident_id}:{input.idempotency_key}:{activity.info().attempt}",
            )
            logins.append((name, host, login))
        activity.heartbeat({"tasks_done": 0, "task": "ssh certificates signed", "accessor": None})
        return logins
