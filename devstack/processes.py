"""The dev stack's processes, ports and lock: what runs a child and what stops it.

Each child runs in its own process group (so a stop reaches anything it started) with its
output in `<data>/logs/<name>.log`; a child's own secret can be blanked in that log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx

from runtime.settings import Settings
from runtime.temporal import connect_config

STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 20

# Secrets a child must not inherit from the dev stack's own environment; each child gets
# exactly the credentials it needs, set explicitly.
SECRET_ENV = (
    "FIREBREAK_API_TOKEN",
    "FIREBREAK_VAULT_TOKEN",
    "FIREBREAK_VAULT_ROOT_TOKEN",
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "BAO_DEV_ROOT_TOKEN_ID",
    "VAULT_DEV_ROOT_TOKEN_ID",
    "FIREBREAK_BUS_TOKEN",
)


class DevStackError(RuntimeError):
    """The dev stack cannot start or keep running; the message says why and what to do."""


class AlreadyRunning(DevStackError):
    def __init__(self, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(
            f"a Firebreak dev stack is already running ({who}); stop it with Ctrl-C in its terminal"
        )
        self.pid = pid


class Interrupted(Exception):
    """Ctrl-C / SIGTERM arrived while the stack was starting."""


# --- addresses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    temporal_host: str
    temporal_port: int
    ui_port: int
    vault_host: str
    vault_port: int
    api_host: str
    api_port: int
    bus_port: int | None = None  # the stack's own NATS (loopback), when it runs one

    @property
    def temporal_address(self) -> str:
        return f"{url_host(self.temporal_host)}:{self.temporal_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{url_host(self.temporal_host)}:{self.ui_port}"

    @property
    def vault_addr(self) -> str:
        return f"http://{url_host(self.vault_host)}:{self.vault_port}"

    @property
    def api_url(self) -> str:
        return f"http://{url_host(self.api_host)}:{self.api_port}"

    def listeners(self) -> list[tuple[str, str, int]]:
        """(what, host, port) of every port the stack listens on."""
        return [
            ("Temporal gRPC", self.temporal_host, self.temporal_port),
            ("Temporal UI", self.temporal_host, self.ui_port),
            ("OpenBao", self.vault_host, self.vault_port),
            ("Firebreak API", self.api_host, self.api_port),
        ] + ([("NATS (alert bus)", LOOPBACK, self.bus_port)] if self.bus_port is not None else [])

    def workflow_url(self, namespace: str, workflow_id: str) -> str:
        return f"{self.ui_url}/namespaces/{namespace}/workflows/{workflow_id}"


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def split_host_port(address: str, what: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise DevStackError(f"{what} {address!r} is not HOST:PORT")
    return host, int(port)


def endpoints_from(settings: Settings) -> Endpoints:
    temporal_host, temporal_port = split_host_port(str(connect_config()["target_host"]), "TEMPORAL_ADDRESS")
    vault = urlsplit(settings.vault_addr)
    if vault.scheme != "http" or not vault.hostname or vault.port is None or vault.path.strip("/"):
        raise DevStackError(
            f"FIREBREAK_VAULT_ADDR {settings.vault_addr!r}: the dev stack starts OpenBao itself "
            "and needs a plain http://HOST:PORT address (e.g. http://127.0.0.1:8200)"
        )
    return Endpoints(
        temporal_host=temporal_host,
        temporal_port=temporal_port,
        ui_port=settings.temporal_ui_port,
        vault_host=vault.hostname,
        vault_port=vault.port,
        api_host=settings.api_host,
        api_port=settings.api_port,
        bus_port=settings.dev_bus_port if settings.bus_url is None and find_nats() is not None else None,
    )


LOOPBACK = "127.0.0.1"
# Debian installs nats-server in /usr/sbin, which is not on every user's PATH.
NATS_PLACES = ("/usr/sbin", "/usr/local/sbin")


def find_nats() -> str | None:
    """The nats-server binary (scripts/install-system-deps.sh installs it), or None."""
    return shutil.which("nats-server") or shutil.which("nats-server", path=os.pathsep.join(NATS_PLACES))


def busy_ports(endpoints: Endpoints) -> list[str]:
    """Describe each port of the stack that something else already listens on."""
    busy: list[str] = []
    for what, host, port in endpoints.listeners():
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            busy.append(f"{what} {host}:{port} (cannot resolve {host!r}: {exc.strerror})")
            continue
        family, _, _, _, sockaddr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR, as the servers themselves set it: a TIME_WAIT left by the
            # previous run is not "busy", a listener is.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                busy.append(f"{what} {host}:{port} ({exc.strerror})")
    return busy


# --- the lock --------------------------------------------------------------------------------


class StackLock:
    """An exclusive flock on `<data>/devstack.lock`, holding the owner's PID.

    The kernel drops a flock when its holder dies, so a crashed dev stack never leaves a
    stale lock behind; the file itself stays (removing it would race with a new owner).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise AlreadyRunning(int(holder) if holder.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


# --- children --------------------------------------------------------------------------------


def find_binary(name: str, package: str) -> str:
    """The binary installed with the venv (next to its python), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise DevStackError(
            f"`{name}` not found next to {sys.executable} or on PATH; it comes with the PyPI "
            f"package {package} (run `make dev`, or `uv pip install -e .`)"
        )
    return found


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    pump: threading.Thread | None = None

    def exited(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.pump is not None:
            self.pump.join(timeout=1)
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def died_message(self) -> str:
        code = self.process.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = self.log_tail()
        message = f"{self.name} {how} unexpectedly; see {self.log_path}"
        if tail:
            message += f"\n--- last lines of {self.log_path.name} ---\n{tail}\n---"
        return message


def _pump_redacted(source: IO[bytes], log: IO[bytes], secret: bytes) -> None:
    """Copy a child's output to its log, blanking a secret that the child prints."""
    with source, log:
        for line in iter(source.readline, b""):
            log.write(line.replace(secret, b"[redacted]"))
            log.flush()


def child_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in SECRET_ENV}
    env.update(extra)
    return env


def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    *,
    redact: str | None = None,
) -> Child:
    """Start a child in a new session with its output in `<log_dir>/<name>.log`."""
    log_path = log_dir / f"{name}.log"
    if log_path.exists():
        log_path.replace(log_path.with_name(f"{name}.log.1"))  # keep the previous run's
    log = log_path.open("wb")
    log.write(f"# {datetime.now(UTC).isoformat()} {' '.join(argv)}\n".encode())
    log.flush()
    # A new session: Ctrl-C in the terminal reaches only the dev stack, which then stops
    # the children in order; and killpg reaches anything a child started.
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if redact else log,
        stderr=subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
    )
    pump = None
    if redact:
        assert process.stdout is not None
        pump = threading.Thread(
            target=_pump_redacted,
            args=(process.stdout, log, redact.encode()),
            name=f"{name}-log",
            daemon=True,
        )
        pump.start()
    else:
        log.close()  # the child holds its own copy of the descriptor
    return Child(name=name, process=process, log_path=log_path, pump=pump)


def stop_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the child's process group, SIGKILL it after `timeout`, reap the child."""
    pgid = process.pid  # start_new_session: the child leads its own group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait()
    # Anything the child left behind in its group goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def http_ok(url: str, accept: range = range(200, 300)) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            response = await http.get(url)
    except httpx.HTTPError:
        return False
    return response.status_code in accept
