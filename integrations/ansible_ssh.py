"""The SSH side of a playbook run: the Ansible inventory, keys and certificates of one run.

integrations/ansible.py calls `write_ansible_inventory` inside the run's private directory
(0700, on tmpfs when there is one, deleted in its `finally`): the only place a per-action key
or certificate is ever written. Each host's key is pinned (`known_hosts` from the inventory)
and each connection authenticates afresh.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from integrations.ssh_ca import SshCredential
from models.inventory import InventoryHost

# One host's login for a run: its inventory name, its inventory entry, the signed credential.
SshLogin = tuple[str, InventoryHost, SshCredential]

# Each SSH connection authenticates afresh (no multiplexing): a certificate is never used by a
# connection that outlives the action that asked for it.
ANSIBLE_SSH_ENV = {
    "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPersist=no",
    "ANSIBLE_PIPELINING": "True",
    "ANSIBLE_HOST_KEY_CHECKING": "True",
    "ANSIBLE_TIMEOUT": "15",
}
TARGETS_GROUP = "firebreak_targets"


def write_ansible_inventory(directory: Path, logins: Sequence[SshLogin]) -> Path:
    """Write each host's key, certificate and pinned host key under `directory`, and an Ansible
    inventory of group `firebreak_targets` that uses them; return the inventory's path.

    `directory` is the run's private directory (0700, deleted in the activity's `finally`):
    the only place a key or certificate is ever written.
    """
    hosts: dict[str, dict[str, Any]] = {}
    for name, host, login in logins:
        keys = directory / "ssh" / name
        keys.mkdir(parents=True, mode=0o700)
        key_file = keys / "id"
        # Created 0600 before the key is written into it: never readable by anyone else.
        with os.fdopen(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(login.private_key.get_secret_value())
        cert_file = keys / "id-cert.pub"
        cert_file.write_text(login.certificate.get_secret_value() + "\n")
        known_hosts = keys / "known_hosts"
        known_hosts.write_text(f"{name} {host.host_key}\n")
        ssh_args = [
            "-F /dev/null",
            f"-o CertificateFile={cert_file}",
            "-o IdentitiesOnly=yes",
            "-o IdentityAgent=none",
            "-o BatchMode=yes",
            f"-o UserKnownHostsFile={known_hosts}",
            "-o GlobalKnownHostsFile=/dev/null",
            "-o StrictHostKeyChecking=yes",
            f"-o HostKeyAlias={name}",
        ]
        hosts[name] = {
            "ansible_connection": "ssh",
            "ansible_host": host.address,
            "ansible_port": host.port,
            "ansible_user": login.user,
            "ansible_python_interpreter": host.python,
            "ansible_ssh_private_key_file": str(key_file),
            "ansible_ssh_common_args": " ".join(ssh_args),
            "firebreak_supervisor_config": host.supervisor_config,
            "firebreak_state_dir": host.state_dir,
            "firebreak_scale_helper": host.scale_helper,
        }
    path = directory / "inventory" / "hosts.yml"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    # Values come from the validated inventory file (its patterns admit no template syntax),
    # never from an alert.
    path.write_text(yaml.safe_dump({"all": {"children": {TARGETS_GROUP: {"hosts": hosts}}}}, sort_keys=True))
    return path
