"""OpenBao/Vault: short-lived, least-privilege credentials for remediation actions.

Layout in Vault (set up by `bootstrap_vault`, idempotently):

- `secret/firebreak/actions/<action>` (KV v2): what the action's playbook needs;
- policy `firebreak-action-<action>`: read on that one path, nothing else;
- token role `<vault_role>` (from the catalog): may only grant that policy, with an
  explicit max TTL equal to the action's timeout;
- policy `firebreak-worker`: the worker's own token may only mint tokens from the
  `firebreak-*` roles and revoke them by accessor. It cannot read any action secret.

A credential lives inside one activity: minted, handed to Ansible through the process
environment, and revoked in a `finally`. Only its accessor (an id, not a secret) leaves.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import hvac
import hvac.exceptions
import requests
from pydantic import SecretStr

from integrations.errors import CredentialDenied, VaultUnavailable
from integrations.openbao import WorkerVault
from integrations.ssh_ca import worker_sign_policy
from models.catalog import ActionSpec, Catalog

logger = logging.getLogger(__name__)

KV_MOUNT = "secret"
WORKER_POLICY = "firebreak-worker"


def action_policy_name(action: str) -> str:
    return f"firebreak-action-{action.replace('_', '-')}"


def action_secret_path(action: str) -> str:
    """KV v2 path of the action's secret (without the mount)."""
    return f"firebreak/actions/{action}"


def action_secret_api_path(action: str) -> str:
    """The HTTP API path a playbook reads (`/v1/<this>`)."""
    return f"{KV_MOUNT}/data/{action_secret_path(action)}"


@dataclass(frozen=True)
class ActionCredential:
    token: SecretStr
    accessor: str
    ttl_seconds: int

    def __repr__(self) -> str:  # never let a token reach a log through repr()
        return f"ActionCredential(accessor={self.accessor!r}, ttl_seconds={self.ttl_seconds})"


class ActionCredentials(WorkerVault):
    """Mints and revokes per-action tokens with the worker's own (narrow) token."""

    def issue(
        self, spec: ActionSpec, incident_id: str, idempotency_key: str, attempt: int = 1
    ) -> ActionCredential:
        ttl = spec.timeout_seconds
        try:
            with self._client() as client:
                response = client.auth.token.create(
                    role_name=spec.vault_role,
                    policies=[action_policy_name(spec.name)],
                    ttl=f"{ttl}s",
                    explicit_max_ttl=f"{ttl}s",
                    no_default_policy=True,
                    renewable=False,
                    display_name=f"firebreak-{spec.name}",
                    meta={
                        "incident": incident_id,
                        "action": spec.name,
                        "key": idempotency_key,
                        "attempt": str(attempt),
                    },
                )
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest) as exc:
            raise CredentialDenied(
                f"Vault refused a token for role {spec.vault_role!r}: {_first_error(exc)}"
            ) from None
        except (requests.RequestException, hvac.exceptions.VaultDown) as exc:
            raise VaultUnavailable(f"Vault at {self._addr} unavailable: {type(exc).__name__}") from None
        auth = response["auth"]
        logger.info("issued credential accessor=%s action=%s ttl=%ss", auth["accessor"], spec.name, ttl)
        return ActionCredential(
            token=SecretStr(auth["client_token"]),
            accessor=auth["accessor"],
            ttl_seconds=int(auth["lease_duration"]),
        )

    def revoke(self, credential: ActionCredential) -> bool:
        """Revoke by accessor; False (logged) when Vault could not be reached."""
        return self.revoke_accessor(credential.accessor, credential.ttl_seconds)

    def revoke_accessor(self, accessor: str, ttl_seconds: int) -> bool:
        """Revoke the token behind `accessor` (also one a killed attempt left behind)."""
        try:
            with self._client() as client:
                client.auth.token.revoke_accessor(accessor)
        except hvac.exceptions.InvalidRequest:
            return True  # already gone (expired): nothing left to revoke
        except (requests.RequestException, hvac.exceptions.VaultError) as exc:
            logger.warning(
                "could not revoke accessor=%s (%s); it expires within its TTL of %ss",
                accessor,
                type(exc).__name__,
                ttl_seconds,
            )
            return False
        logger.info("revoked credential accessor=%s", accessor)
        return True


def _first_error(exc: hvac.exceptions.VaultError) -> str:
    errors = getattr(exc, "errors", None)
    return str(errors[0]) if errors else type(exc).__name__


def bootstrap_vault(
    root: hvac.Client,
    catalog: Catalog,
    worker_token_ttl: str = "768h",  # noqa: S107 - a duration
) -> SecretStr:
    """Create the secrets, policies and roles the catalog needs; return a worker token.

    Idempotent: existing action secrets are kept (a real deployment puts real ones there).
    """
    if f"{KV_MOUNT}/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
    role_patterns: list[str] = []
    for spec in catalog.actions.values():
        path = action_secret_path(spec.name)
        try:
            root.secrets.kv.v2.read_secret_version(
                path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            # Dev/demo value; the demo playbooks only check that it can be read.
            root.secrets.kv.v2.create_or_update_secret(
                path=path, mount_point=KV_MOUNT, secret={"api_key": secrets.token_urlsafe(24)}
            )
        root.sys.create_or_update_policy(
            name=action_policy_name(spec.name),
            policy=f'path "{action_secret_api_path(spec.name)}" {{\n  capabilities = ["read"]\n}}\n',
        )
        # hvac's role helper lacks the token_* fields, so write the role directly.
        root.adapter.post(
            f"/v1/auth/token/roles/{spec.vault_role}",
            json={
                "allowed_policies": [action_policy_name(spec.name)],
                "orphan": False,
                "renewable": False,
                "token_explicit_max_ttl": spec.timeout_seconds,
                "token_no_default_policy": True,
                "token_type": "service",
            },
        )
        role_patterns.append(spec.vault_role)
    worker_policy = (
        "".join(
            f'path "auth/token/create/{role}" {{\n  capabilities = ["create", "update"]\n}}\n'
            for role in sorted(role_patterns)
        )
        + 'path "auth/token/revoke-accessor" {\n  capabilities = ["update"]\n}\n'
        # Over SSH: sign per-action certificates with the Firebreak roles (integrations/ssh_ca.py).
        + worker_sign_policy()
    )
    root.sys.create_or_update_policy(name=WORKER_POLICY, policy=worker_policy)
    response = root.auth.token.create(
        policies=[WORKER_POLICY],
        ttl=worker_token_ttl,
        display_name="firebreak-worker",
        renewable=True,
    )
    return SecretStr(response["auth"]["client_token"])
