"""ansible-runner: run a catalog playbook in a private, short-lived data dir, reporting progress.

What Firebreak hands to Ansible is data, never a template. ansible-core renders Jinja in
variables it trusts, and it trusts extra vars: an `incident_id` of `{{ lookup('pipe', ...) }}`
would run on the worker host, even in check mode. So every value goes to Ansible in a vars
file (`-e @file`) in which each string is tagged `!unsafe`: Ansible substitutes it where a
playbook names it and never renders what is inside. Identifiers that playbooks use in paths
and records must also be plain tokens; the catalog's schema already bounds every param
(models/catalog.py).

Secrets: the Vault token reaches Ansible as `VAULT_TOKEN` in the child's environment, never
on the command line or in extravars. ansible-runner still dumps the environment into its
artifact dir, so the private data dir lives on tmpfs when there is one, is mode 0700 and is
deleted in a `finally`. Over SSH the run's per-action keys and certificates are written
into the same private dir, and nowhere else (integrations/ansible_ssh.py).

Every run reports what it changed (or, in check mode, would change) task by task, from
Ansible's `--diff`. Tasks that touch the credential are `no_log`, so Ansible censors their
results and no diff of theirs ever exists.

The local playbooks run on the group `firebreak_targets`, as the SSH ones do: a run on this
machine gets an inventory whose one host is `localhost`; a shared check-mode run
(`run_check_batch`, integrations/previews.py) gets one local host per preview, each with its
own `!unsafe` host_vars file, so one Ansible process previews many incidents' actions.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml
from pydantic import SecretStr

from integrations.ansible_ssh import ANSIBLE_SSH_ENV, TARGETS_GROUP, SshLogin, write_ansible_inventory
from integrations.errors import PlaybookError
from models.catalog import CatalogError
from models.incident import PlannedChange

# Diffs go into workflow history and the approval request: bounded.
MAX_CHANGES = 20
MAX_DIFF_CHARS = 2000
# Workflow ids, idempotency keys, targets: letters, digits and . _ : @ -, first one alphanumeric.
PLAIN_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}")


def plain_identifiers(values: Mapping[str, str | None]) -> None:
    """Raise CatalogError naming the first value that is not a plain identifier."""
    for name, value in values.items():
        if value is not None and PLAIN_IDENTIFIER.fullmatch(value) is None:
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise CatalogError(
                f"{name}: {shown!r} is not a plain identifier (letters, digits, . _ : @ -; at most 255)"
            )


def unsafe_vars_yaml(values: Mapping[str, Any]) -> str:
    """A YAML vars document whose root mapping is tagged `!unsafe`.

    Ansible marks everything under an `!unsafe` node untrusted, however deep. The tag sits on
    the root mapping, not on each string: ansible-core 2.19 re-resolves an `!unsafe` scalar as
    if it were plain, which turns "123" into an int and fails outright on "*", "&" or "!";
    under an unsafe mapping, quoted strings stay strings.
    """
    for name in values:
        if PLAIN_IDENTIFIER.fullmatch(name) is None or not name.isidentifier():
            raise CatalogError(f"{name!r}: not a valid Ansible variable name")
        _check_plain_data(name, values[name])
    body = yaml.safe_dump(dict(values), allow_unicode=True, sort_keys=True, width=1 << 30)
    return "!unsafe\n" + body


def _check_plain_data(name: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_plain_data(f"{name}.{key}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_plain_data(f"{name}[{index}]", item)
    elif not (value is None or isinstance(value, str | bool | int | float)):
        raise CatalogError(f"{name}: a value of type {type(value).__name__} cannot be passed to Ansible")


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
class PlaybookProgress:
    """Filled by ansible-runner's callbacks on its thread, read by the activity's heartbeat loop."""

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


def _route_by_host(progress: Mapping[str, PlaybookProgress]) -> Callable[[Mapping[str, Any]], bool]:
    """An event handler giving each host's events to that host's progress only.

    Playbook-level events (a task starting) name no host and go to all of them.
    """

    def on_event(event: Mapping[str, Any]) -> bool:
        host = (event.get("event_data") or {}).get("host")
        if host is None:
            for each in progress.values():
                each.on_event(event)
        elif host in progress:
            progress[host].on_event(event)
        return True

    return on_event


def write_local_inventory(directory: Path, host_vars: Mapping[str, Mapping[str, Any]]) -> Path:
    """An inventory of group `firebreak_targets` whose hosts all run on this machine; return its path.

    Each host's own values go into its `host_vars` file as unsafe data, exactly as a single
    run's go into its vars file: never into the inventory, never rendered.
    """
    inventory_dir = directory / "inventory"
    (inventory_dir / "host_vars").mkdir(parents=True, mode=0o700)
    for name, values in host_vars.items():
        if values:
            (inventory_dir / "host_vars" / f"{name}.yml").write_text(unsafe_vars_yaml(values))
    hosts = {name: {"ansible_connection": "local"} for name in host_vars}
    path = inventory_dir / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {TARGETS_GROUP: {"hosts": hosts}}}}, sort_keys=True))
    return path


def _host_status(runner_status: str, stats: Mapping[str, Mapping[str, int]], host: str) -> str:
    """One host's outcome in a shared run: its own failures only, never another host's."""
    if runner_status in ("canceled", "timeout"):
        return runner_status
    if host not in (stats.get("processed") or {}):
        return "failed"
    if (stats.get("failures") or {}).get(host) or (stats.get("dark") or {}).get(host):
        return "failed"
    return "successful"


def _ansible_env() -> dict[str, str]:
    """The child's environment before any credential: this interpreter's Ansible, plain output."""
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }


def _runtime_root(configured: Path | None) -> Path:
    if configured is not None:
        configured.mkdir(parents=True, exist_ok=True)
        return configured
    shm = Path("/dev/shm")  # noqa: S108 - RAM-backed on purpose; mkdtemp gives a private 0700 dir
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


class PlaybookRunner:
    """Runs the catalog's playbooks (blocking: call it from a thread) and cleans up after each run."""

    def __init__(self, project_dir: Path, runtime_dir: Path | None = None) -> None:
        self._project_dir = project_dir
        self._runtime_dir = runtime_dir
        # ansible-runner runs started (each is one ansible-playbook process): benches and tests read it.
        self.runs_started = 0
        self._count_lock = threading.Lock()

    def _count_run(self) -> None:
        with self._count_lock:
            self.runs_started += 1

    def run(
        self,
        playbook: str,
        extravars: Mapping[str, Any],
        vault_token: SecretStr | None,
        check_mode: bool,
        progress: PlaybookProgress,
        logins: Sequence[SshLogin] = (),
    ) -> tuple[str, bool]:
        """Run `playbook` with `extravars` as unsafe data; return (runner status, changed).

        With `logins` the playbook runs over SSH on those hosts (integrations/ansible_ssh.py),
        each with its own interpreter; without, on `localhost` with this interpreter.

        Raises PlaybookError when ansible-runner could not run it at all, CatalogError when a
        value cannot be handed to Ansible. Cancelled through `progress.cancel`.
        """
        values = dict(extravars)
        if not logins:
            values["ansible_python_interpreter"] = sys.executable
        envvars = _ansible_env()
        if vault_token is not None:
            envvars["VAULT_TOKEN"] = vault_token.get_secret_value()
        if logins:
            envvars.update(ANSIBLE_SSH_ENV)
        private_dir = tempfile.mkdtemp(prefix="firebreak-run-", dir=_runtime_root(self._runtime_dir))
        try:
            os.chmod(private_dir, 0o700)
            # Over SSH: the keys, certificates and inventory go into this private dir, only.
            inventory = (
                write_ansible_inventory(Path(private_dir), logins)
                if logins
                else write_local_inventory(Path(private_dir), {"localhost": {}})
            )
            runner = self._execute(
                Path(private_dir),
                playbook,
                inventory,
                envvars,
                values,
                check_mode=check_mode,
                event_handler=progress.on_event,
                cancel=progress.cancel.is_set,
            )
            stats = runner.stats or {}
            changed = any((stats.get("changed") or {}).values())
            return str(runner.status), changed
        finally:
            shutil.rmtree(private_dir, ignore_errors=True)

    def _execute(
        self,
        private_dir: Path,
        playbook: str,
        inventory: Path,
        envvars: dict[str, str],
        values: Mapping[str, Any],
        *,
        check_mode: bool,
        event_handler: Callable[[Mapping[str, Any]], bool],
        cancel: Callable[[], bool],
        forks: int | None = None,
    ) -> Any:
        """One ansible-runner run from `private_dir`; raises PlaybookError if it could not run.

        Every value reaches Ansible as data: a vars file whose strings are all `!unsafe`, never
        ansible-runner's extravars (which Ansible would render as templates).
        """
        vars_file = private_dir / "firebreak-vars.yml"
        vars_file.write_text(unsafe_vars_yaml(values))
        cmdline = f"-e @{shlex.quote(str(vars_file))}" + (" --check --diff" if check_mode else "")
        self._count_run()
        runner = ansible_runner.run(
            private_data_dir=str(private_dir),
            inventory=str(inventory),
            project_dir=str(self._project_dir),
            playbook=playbook,
            envvars=envvars,
            cmdline=cmdline,
            suppress_env_files=True,
            quiet=True,
            event_handler=event_handler,
            cancel_callback=cancel,
            timeout=None,
            **({"forks": forks} if forks is not None else {}),
        )
        if runner.status in ("error",) or runner.rc is None:
            raise PlaybookError(f"ansible-runner could not run {playbook}: status {runner.status}")
        return runner

    def run_check_batch(
        self,
        playbook: str,
        shared_vars: Mapping[str, Any],
        host_vars: Mapping[str, Mapping[str, Any]],
        progress: Mapping[str, PlaybookProgress],
        cancel: Callable[[], bool],
        forks: int,
    ) -> dict[str, tuple[str, bool]]:
        """Preview `playbook` in check mode on this machine for many requests in ONE Ansible run.

        Each request is a local host of its own: `shared_vars` (the same for all: paths, the
        interpreter) are extra vars; each host's `host_vars` (its params, incident, key) are
        its own unsafe host_vars file, so no request's value reaches another's host. Each
        host's events go to its own `progress`. Returns (status, changed) per host: a host
        that failed, was unreachable or never ran fails alone.

        No credential: a check-mode run on this machine holds none (activities/remediation.py).
        Raises PlaybookError when ansible-runner could not run it at all, CatalogError when a
        value cannot be handed to Ansible.
        """
        values = {**shared_vars, "ansible_python_interpreter": sys.executable}
        envvars = _ansible_env()
        private_dir = tempfile.mkdtemp(prefix="firebreak-preview-", dir=_runtime_root(self._runtime_dir))
        try:
            os.chmod(private_dir, 0o700)
            inventory = write_local_inventory(Path(private_dir), host_vars)
            runner = self._execute(
                Path(private_dir),
                playbook,
                inventory,
                envvars,
                values,
                check_mode=True,
                event_handler=_route_by_host(progress),
                cancel=cancel,
                forks=forks,
            )
            stats = runner.stats or {}
            results: dict[str, tuple[str, bool]] = {}
            for host in host_vars:
                status = _host_status(str(runner.status), stats, host)
                if host not in (stats.get("processed") or {}):
                    progress[host].failed_tasks.append("(the playbook did not run on this host)")
                results[host] = (status, bool((stats.get("changed") or {}).get(host)))
            return results
        finally:
            shutil.rmtree(private_dir, ignore_errors=True)
