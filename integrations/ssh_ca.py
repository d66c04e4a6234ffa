"""OpenBao's SSH secrets engine as the certificate authority for remediation over SSH.

Layout in OpenBao (set up by `bootstrap_ssh_ca`, idempotently):

- an `ssh` secrets engine at `ssh-client-signer/`, holding the CA's signing key (ed25519);
- one role per action and inventory host, `firebreak-ssh-<action>-<host>`: it signs user
  certificates for exactly one principal, `<action>@<host>`, with no extensions (no pty, no
  forwarding) and a TTL no longer than the action's timeout;
- the worker's policy (integrations/vault.py) may only call `sign` on those roles.

Each host trusts the CA (`TrustedUserCAKeys`) and lists, per unix user, the one principal
that may log in as it (`AuthorizedPrincipalsFile`): the certificate for one action on one host
opens one account on that host and nothing else.

A key pair is made per action, in memory (`new_key_pair`), and only its public half is sent
to OpenBao. OpenBao cannot revoke an SSH certificate: it dies at its TTL, and the private key
dies sooner, with the action's private directory.

Errors are the Vault ones of integrations.errors: `VaultUnavailable` when OpenBao does not
answer (retryable), `CredentialDenied` when it refuses to sign (not retryable).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import hvac
import hvac.exceptions
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from integrations.errors import CredentialDenied, VaultUnavailable
from integrations.openbao import WorkerVault
from models.catalog import Catalog
from models.inventory import Inventory

logger = logging.getLogger(__name__)

SSH_MOUNT = "ssh-client-signer"
SSH_ROLE_PREFIX = "firebreak-ssh-"
_KEY_ID = re.compile(r"[^A-Za-z0-9._:@-]")


def ssh_role_name(action: str, host: str) -> str:
    return f"{SSH_ROLE_PREFIX}{action.replace('_', '-')}-{host}"


def ssh_principal(action: str, host: str) -> str:
    """The one principal a certificate for `action` on `host` carries."""
    return f"{action}@{host}"


def worker_sign_policy() -> str:
    """The HCL that lets the worker's token sign with the Firebreak roles, and nothing more."""
    return f'path "{SSH_MOUNT}/sign/{SSH_ROLE_PREFIX}*" {{\n  capabilities = ["update"]\n}}\n'


@dataclass(frozen=True)
class KeyPair:
    private_openssh: SecretStr
    public_openssh: str

    def __repr__(self) -> str:
        return "KeyPair(<private key hidden>)"


def new_key_pair() -> KeyPair:
    """A fresh ed25519 key pair, made in memory, never written by this function."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return KeyPair(private_openssh=SecretStr(private), public_openssh=public.decode())


@dataclass(frozen=True)
class SshCredential:
    """One action's login on one host: key, certificate, and who it lets in where."""

    host: str
    user: str
    principal: str
    private_key: SecretStr
    certificate: SecretStr
    serial: str
    ttl_seconds: int

    def __repr__(self) -> str:  # keys and certificates never reach a log through repr()
        return (
            f"SshCredential(host={self.host!r}, user={self.user!r}, principal={self.principal!r}, "
            f"serial={self.serial!r}, ttl_seconds={self.ttl_seconds})"
        )


class SshCertificateAuthority(WorkerVault):
    """Signs per-action keys with the worker's own (narrow) token; keeps nothing between calls."""

    def issue(self, action: str, host: str, user: str, ttl_seconds: int, key_id: str) -> SshCredential:
        """A new key pair and OpenBao's certificate for it: `action` on `host`, for `ttl_seconds`."""
        keys = new_key_pair()
        role = ssh_role_name(action, host)
        principal = ssh_principal(action, host)
        try:
            with self._client() as client:
                response = client.adapter.post(
                    f"/v1/{SSH_MOUNT}/sign/{role}",
                    json={
                        "public_key": keys.public_openssh,
                        "cert_type": "user",
                        "valid_principals": principal,
                        "ttl": f"{ttl_seconds}s",
                        "key_id": _KEY_ID.sub("_", key_id)[:200],
                    },
                )
        except (
            hvac.exceptions.Forbidden,
            hvac.exceptions.InvalidRequest,
            hvac.exceptions.InvalidPath,
        ) as exc:
            raise CredentialDenied(
                f"Vault refused an SSH certificate from role {role!r}: {_first_error(exc)}"
            ) from None
        except (
            requests.RequestException,
            hvac.exceptions.VaultDown,
            hvac.exceptions.InternalServerError,
        ) as exc:
            raise VaultUnavailable(
                f"Vault at {self._addr} unavailable for SSH signing: {type(exc).__name__}"
            ) from None
        data = response["data"]
        credential = SshCredential(
            host=host,
            user=user,
            principal=principal,
            private_key=keys.private_openssh,
            certificate=SecretStr(str(data["signed_key"]).strip()),
            serial=str(data["serial_number"]),
            ttl_seconds=ttl_seconds,
        )
        logger.info(
            "signed ssh certificate serial=%s principal=%s ttl=%ss", credential.serial, principal, ttl_seconds
        )
        return credential


def _first_error(exc: hvac.exceptions.VaultError) -> str:
    errors = getattr(exc, "errors", None)
    return str(errors[0]) if errors else type(exc).__name__


def bootstrap_ssh_ca(root: hvac.Client, catalog: Catalog, inventory: Inventory) -> str:
    """Mount the SSH CA, write one role per action and host; return the CA's public key.

    Idempotent: an existing CA key is kept (hosts already trust it).
    """
    if f"{SSH_MOUNT}/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("ssh", path=SSH_MOUNT)
    try:
        root.adapter.get(f"/v1/{SSH_MOUNT}/config/ca")
    except hvac.exceptions.InvalidRequest:
        root.adapter.post(
            f"/v1/{SSH_MOUNT}/config/ca", json={"generate_signing_key": True, "key_type": "ssh-ed25519"}
        )
    for host_name in inventory.hosts:
        for spec in catalog.actions.values():
            principal = ssh_principal(spec.name, host_name)
            root.adapter.post(
                f"/v1/{SSH_MOUNT}/roles/{ssh_role_name(spec.name, host_name)}",
                json={
                    "key_type": "ca",
                    "allow_user_certificates": True,
                    "allow_host_certificates": False,
                    "allowed_users": principal,
                    "default_user": principal,
                    "allow_user_key_ids": True,
                    "allowed_extensions": "",
                    "default_extensions": {},
                    "allowed_critical_options": "",
                    "ttl": f"{spec.timeout_seconds}s",
                    "max_ttl": f"{spec.timeout_seconds}s",
                    "allowed_user_key_lengths": {"ed25519": [0]},
                },
            )
    return ca_public_key(root)


def ca_public_key(client: hvac.Client) -> str:
    response = client.adapter.get(f"/v1/{SSH_MOUNT}/config/ca")
    return str(response["data"]["public_key"]).strip()
