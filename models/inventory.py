"""The inventory: which hosts a remediation target resolves to, and how to reach them over SSH.

Loaded from an operator's YAML file (integrations/inventory.py) and validated like the
catalog: every field is typed and bounded, unknown fields are refused, and an error names
the field. Targets come from alerts and LLM output; hosts, addresses, users and paths come
only from here, so nothing a client sends can pick where Ansible connects or what it touches.
See README "Remediation over SSH" for the file's shape.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from models.catalog import CatalogError

HostName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
ServiceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
ActionName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
UnixUser = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
# A DNS name or an IPv4/IPv6 literal: never anything Ansible would read as a pattern or a template.
Address = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$")]
AbsolutePath = Annotated[
    str, StringConstraints(pattern=r"^(/[A-Za-z0-9_][A-Za-z0-9._-]{0,127}){1,16}$", max_length=1024)
]
HostKey = Annotated[
    str,
    StringConstraints(
        pattern=r"^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ssh-rsa) [A-Za-z0-9+/]+={0,2}$",
        max_length=2048,
    ),
]


class InventoryError(CatalogError):
    """The inventory file does not validate, or a target is not in it (never retried)."""


class InventoryHost(BaseModel):
    """A host Firebreak may act on, and the account each action logs in as there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: Address
    port: int = Field(default=22, ge=1, le=65535)
    # Pinned: the host's own key, so a certificate is never presented to an impostor.
    host_key: HostKey
    python: AbsolutePath = "/usr/bin/python3"
    # One unix user per action; the host maps principal `<action>@<host>` to it, and lets it
    # do only that action (README: "Remediation over SSH").
    users: dict[ActionName, UnixUser] = Field(min_length=1)
    supervisor_config: AbsolutePath = "/etc/supervisor/supervisord.conf"
    # Where each action's user keeps its records (idempotency keys, replica counts).
    state_dir: AbsolutePath = "/var/lib/firebreak"
    # The root-owned helper that scale_service's user may run through sudo.
    scale_helper: AbsolutePath = "/usr/local/sbin/firebreak-scale"


class InventoryService(BaseModel):
    """A remediation target: the hosts it runs on and its supervisor program."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: list[HostName] = Field(min_length=1, max_length=100)
    program: ServiceName | None = None  # supervisor program (group) name; default: the service's
    log_dir: AbsolutePath | None = None  # where clear_disk_space looks for rotated logs


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: dict[HostName, InventoryHost] = Field(min_length=1)
    services: dict[ServiceName, InventoryService] = Field(min_length=1)

    @model_validator(mode="after")
    def _hosts_exist(self) -> Inventory:
        for name, service in self.services.items():
            for host in service.hosts:
                if host not in self.hosts:
                    raise ValueError(f"services.{name}.hosts: {host!r} is not in hosts")
            if len(set(service.hosts)) != len(service.hosts):
                raise ValueError(f"services.{name}.hosts: a host is listed twice")
        return self

    def check_actions(self, actions: set[str]) -> None:
        """Every action a host names must be in the catalog (a typo would silently lock it out)."""
        for name, host in self.hosts.items():
            for action in host.users:
                if action not in actions:
                    raise InventoryError(f"hosts.{name}.users.{action}: not an action in the catalog")

    def resolve(self, target: str, action: str) -> list[tuple[str, InventoryHost]]:
        """The hosts `action` on `target` runs on; InventoryError (with the reason) if none may."""
        service = self.services.get(target)
        if service is None:
            raise InventoryError(
                f"action.target: {target[:80]!r} is not in the inventory; nothing was run "
                f"(known services: {sorted(self.services)[:20]})"
            )
        hosts = [(name, self.hosts[name]) for name in service.hosts]
        for name, host in hosts:
            if action not in host.users:
                raise InventoryError(
                    f"hosts.{name}.users: no user for action {action!r} on {name}, which serves "
                    f"{target!r}; nothing was run"
                )
        return hosts
