"""A real host to remediate over SSH: Debian's sshd and supervisord, trusting only OpenBao's CA.

`SshTestbed.start` (root only, as in CI) builds, under a private directory:

- two sshd instances on loopback ports, `host-a` and `host-b`, each with its own host key and
  config: `TrustedUserCAKeys` is the OpenBao SSH CA's public key, no authorized_keys, no
  passwords, and `AuthorizedPrincipalsFile` maps each action's unix user to the one principal
  `<action>@<host>` that may log in as it there;
- unix users, one per action (`fbt-restart`, `fbt-scale`, `fbt-clean`) and one the service
  runs as (`fbt-svc`), and a sudoers file that lets `fbt-restart` run only
  `supervisorctl -c <config> restart ...` and `fbt-scale` only the scale helper
  (scripts/ssh-host/firebreak-scale) with that config;
- supervisord with its own config and socket (root-only), running `demo-svc`: a small HTTP
  service that appends `start <pid>` to a file each time it starts, so tests count restarts
  and processes on the host itself;
- the inventory file Firebreak reads to reach it.

Everything is removed at the end (users, sudoers file, processes, directory).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCALE_HELPER_SOURCE = PROJECT_ROOT / "scripts" / "ssh-host" / "firebreak-scale"
HOSTS_BASE = Path("/var/lib/firebreak-test-hosts")  # not under /tmp: sshd's StrictModes stays on
SERVICE = "demo-svc"
ACTION_USERS = {
    "restart_service": "fbt-restart",
    "scale_service": "fbt-scale",
    "clear_disk_space": "fbt-clean",
}
SERVICE_USER = "fbt-svc"
HOST_NAMES = ("host-a", "host-b")

DEMO_SERVICE = '''\
"""A tiny real service: records each start (pid), then answers HTTP on a loopback port."""
import http.server
import os
import sys

with open(sys.argv[1], "a") as starts:
    starts.write(f"start {os.getpid()} {os.environ.get('SUPERVISOR_PROCESS_NAME', '')}\\n")


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\\n")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok).serve_forever()
'''


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=60)


def _own(path: Path, user: str, mode: int, group: str | None = None) -> None:
    entry = pwd.getpwnam(user)
    gid = entry.pw_gid if group is None else pwd.getpwnam(group).pw_gid
    os.chown(path, entry.pw_uid, gid)
    os.chmod(path, mode)


def _ensure_user(name: str, home: Path) -> None:
    try:
        pwd.getpwnam(name)
        _run("usermod", "--home", str(home), name)
    except KeyError:
        _run("useradd", "--system", "--user-group", "--shell", "/bin/sh", "--home-dir", str(home), name)
    # "*": no password, but not locked ("!"), which sshd would refuse for every method.
    _run("usermod", "--password", "*", name)
    home.mkdir(parents=True, exist_ok=True)
    _own(home, name, 0o700)


def _wait_for(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SshHost:
    name: str
    port: int
    host_key: str  # "ssh-ed25519 AAAA...", pinned in the inventory
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"


@dataclass
class SshTestbed:
    root: Path
    ca_public_key: str
    hosts: dict[str, SshHost] = field(default_factory=dict)
    supervisord: subprocess.Popen[bytes] | None = None
    sudoers: Path | None = None

    @property
    def supervisor_config(self) -> Path:
        return self.root / "supervisor" / "supervisord.conf"

    @property
    def inventory_path(self) -> Path:
        return self.root / "inventory.yaml"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def log_dir(self) -> Path:
        return self.root / "log" / SERVICE

    @property
    def starts_log(self) -> Path:
        return self.root / "srv" / SERVICE / "starts.log"

    @property
    def scale_helper(self) -> Path:
        return self.root / "bin" / "firebreak-scale"

    # --- what tests read on the host ------------------------------------------------------

    def starts(self) -> list[str]:
        """One line per start of a demo-svc process, ever: `start <pid> <process name>`."""
        return self.starts_log.read_text().splitlines() if self.starts_log.exists() else []

    def status(self) -> dict[str, tuple[str, int]]:
        """supervisorctl status of demo-svc: process name -> (state, pid)."""
        done = subprocess.run(
            ["supervisorctl", "-c", str(self.supervisor_config), "status", f"{SERVICE}:*"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        found: dict[str, tuple[str, int]] = {}
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                pid = int(parts[3].rstrip(",")) if len(parts) > 3 and parts[2] == "pid" else 0
                found[parts[0]] = (parts[1], pid)
        return found

    def wait_running(self, count: int, timeout: float = 30.0) -> dict[str, tuple[str, int]]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            running = [s for s in status.values() if s[0] == "RUNNING"]
            if len(running) == count == len(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"demo-svc is not {count} RUNNING processes: {status}")
            time.sleep(0.2)

    def numprocs(self) -> int:
        text = (self.root / "supervisor" / "conf.d" / f"{SERVICE}.conf").read_text()
        (line,) = [x for x in text.splitlines() if x.startswith("numprocs=")]
        return int(line.split("=", 1)[1])

    def ssh(
        self, host: str, user: str, key_dir: Path, command: list[str], timeout: float = 20.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` on `host` as `user` with the key and certificate in `key_dir` (id, id-cert.pub)."""
        target = self.hosts[host]
        known = key_dir / "known_hosts"
        known.write_text(f"{host} {target.host_key}\n")
        return subprocess.run(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                str(key_dir / "id"),
                "-o",
                f"CertificateFile={key_dir / 'id-cert.pub'}",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "BatchMode=yes",
                "-o",
                f"UserKnownHostsFile={known}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                f"HostKeyAlias={host}",
                "-p",
                str(target.port),
                "-l",
                user,
                "127.0.0.1",
                "--",
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def start(cls, ca_public_key: str) -> SshTestbed:
        if os.geteuid() != 0:
            raise RuntimeError("the SSH test host needs root (users, sudoers, sshd); CI runs as root")
        for binary in ("/usr/sbin/sshd", "/usr/bin/supervisord", "/usr/bin/supervisorctl", "/usr/bin/sudo"):
            if not Path(binary).exists():
                raise RuntimeError(f"{binary} missing: run scripts/install-system-deps.sh")
        HOSTS_BASE.mkdir(mode=0o755, exist_ok=True)
        root = HOSTS_BASE / secrets.token_hex(4)
        root.mkdir(mode=0o755)
        bed = cls(root=root, ca_public_key=ca_public_key)
        try:
            bed._build()
        except BaseException:
            bed.stop()
            raise
        return bed

    def _build(self) -> None:
        root = self.root
        for user in (*ACTION_USERS.values(), SERVICE_USER):
            _ensure_user(user, root / "home" / user)
        os.chmod(root / "home", 0o755)
        (root / "ca.pub").write_text(self.ca_public_key + "\n")

        bin_dir = root / "bin"
        bin_dir.mkdir(mode=0o755)
        (bin_dir / "demo_service.py").write_text(DEMO_SERVICE)
        shutil.copyfile(SCALE_HELPER_SOURCE, self.scale_helper)
        os.chmod(self.scale_helper, 0o755)

        # Each action's user keeps its records in a directory only it can use.
        # Per host: the two "hosts" share this machine's filesystem, real ones would not.
        for host in HOST_NAMES:
            (self.state_dir / host).mkdir(parents=True, mode=0o755)
            os.chmod(self.state_dir, 0o755)
            for action, user in ACTION_USERS.items():
                (self.state_dir / host / action).mkdir()
                _own(self.state_dir / host / action, user, 0o700)
        srv = root / "srv" / SERVICE
        srv.mkdir(parents=True)
        _own(srv, SERVICE_USER, 0o755)
        # The service writes its logs; the clean user may delete in the directory.
        self.log_dir.mkdir(parents=True)
        _own(self.log_dir, SERVICE_USER, 0o2770, group=ACTION_USERS["clear_disk_space"])
        os.chmod(root / "log", 0o755)

        self._start_supervisord()
        self._write_sudoers()
        for name in HOST_NAMES:
            self._start_sshd(name)
        self._write_inventory()

    def _start_supervisord(self) -> None:
        conf_dir = self.root / "supervisor"
        (conf_dir / "conf.d").mkdir(parents=True)
        os.chmod(conf_dir, 0o755)
        sock = conf_dir / "supervisor.sock"
        self.supervisor_config.write_text(
            f"[unix_http_server]\nfile={sock}\nchmod=0700\n\n"
            f"[supervisord]\nlogfile={conf_dir / 'supervisord.log'}\npidfile={conf_dir / 'supervisord.pid'}\n"
            f"childlogdir={conf_dir}\nnodaemon=true\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisorctl]\nserverurl=unix://{sock}\n\n"
            f"[include]\nfiles={conf_dir / 'conf.d'}/*.conf\n"
        )
        (conf_dir / "conf.d" / f"{SERVICE}.conf").write_text(
            f"[program:{SERVICE}]\n"
            f"command=/usr/bin/python3 {self.root / 'bin' / 'demo_service.py'} {self.starts_log}\n"
            "process_name=%(program_name)s_%(process_num)02d\n"
            "numprocs=1\n"
            f"user={SERVICE_USER}\n"
            f"directory={self.root / 'srv' / SERVICE}\n"
            "autostart=true\nautorestart=true\nstartsecs=1\nstopwaitsecs=5\n"
            f"stdout_logfile={self.log_dir / 'stdout.log'}\nredirect_stderr=true\n"
        )
        log = (conf_dir / "supervisord.out").open("wb")
        self.supervisord = subprocess.Popen(
            ["/usr/bin/supervisord", "-c", str(self.supervisor_config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_running(1)

    def _write_sudoers(self) -> None:
        config = self.supervisor_config
        text = (
            "# Firebreak SSH test host: each action's user may run only its own command.\n"
            f"{ACTION_USERS['restart_service']} ALL=(root) NOPASSWD: "
            f"/usr/bin/supervisorctl -c {config} restart *\n"
            f"{ACTION_USERS['scale_service']} ALL=(root) NOPASSWD: {self.scale_helper} {config} *\n"
        )
        candidate = self.root / "sudoers"
        candidate.write_text(text)
        os.chmod(candidate, 0o440)
        _run("visudo", "-cf", str(candidate))
        self.sudoers = Path("/etc/sudoers.d") / f"firebreak-test-{self.root.name}"
        shutil.copyfile(candidate, self.sudoers)
        os.chmod(self.sudoers, 0o440)

    def _start_sshd(self, name: str) -> None:
        directory = self.root / f"sshd-{name}"
        (directory / "principals").mkdir(parents=True)
        os.chmod(directory, 0o755)
        os.chmod(directory / "principals", 0o755)
        key = directory / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
        for action, user in ACTION_USERS.items():
            principals = directory / "principals" / user
            principals.write_text(f"{action}@{name}\n")
            os.chmod(principals, 0o644)
        port = _free_port()
        config = directory / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {directory / 'sshd.pid'}\n"
            f"TrustedUserCAKeys {self.root / 'ca.pub'}\n"
            f"AuthorizedPrincipalsFile {directory / 'principals'}/%u\n"
            "AuthorizedKeysFile none\nAuthenticationMethods publickey\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin no\n"
            f"AllowUsers {' '.join(ACTION_USERS.values())}\n"
            "AllowTcpForwarding no\nAllowAgentForwarding no\nX11Forwarding no\nPermitTunnel no\n"
            "PermitUserEnvironment no\nLogLevel VERBOSE\nMaxStartups 50:30:100\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        _run("/usr/sbin/sshd", "-t", "-f", str(config))
        host = SshHost(
            name=name,
            port=port,
            host_key=" ".join((directory / "ssh_host_ed25519_key.pub").read_text().split()[:2]),
            directory=directory,
        )
        log = host.log.open("wb")
        host.process = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.hosts[name] = host

        def listening() -> bool:
            import socket

            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        _wait_for(listening, f"sshd {name} on port {port}")

    def _write_inventory(self) -> None:
        inventory = {
            "hosts": {
                name: {
                    "address": "127.0.0.1",
                    "port": host.port,
                    "host_key": host.host_key,
                    "python": "/usr/bin/python3",
                    "users": dict(ACTION_USERS),
                    "supervisor_config": str(self.supervisor_config),
                    "state_dir": str(self.state_dir / name),
                    "scale_helper": str(self.scale_helper),
                }
                for name, host in self.hosts.items()
            },
            "services": {
                SERVICE: {"hosts": ["host-a"], "program": SERVICE, "log_dir": str(self.log_dir)},
                # The same program name, but on host-b only: a different host to try to reach.
                "other-svc": {"hosts": ["host-b"], "program": SERVICE, "log_dir": str(self.log_dir)},
                # On both hosts (one supervisord behind both): one certificate per host.
                "both-svc": {"hosts": ["host-a", "host-b"], "program": SERVICE, "log_dir": str(self.log_dir)},
            },
        }
        self.inventory_path.write_text(yaml.safe_dump(inventory, sort_keys=False))

    def stop(self) -> None:
        for host in self.hosts.values():
            if host.process is not None:
                host.process.terminate()
                try:
                    host.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    host.process.kill()
        if self.supervisord is not None:
            self.supervisord.send_signal(signal.SIGTERM)
            try:
                self.supervisord.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.supervisord.kill()
        if self.sudoers is not None:
            self.sudoers.unlink(missing_ok=True)
        for user in (*ACTION_USERS.values(), SERVICE_USER):
            subprocess.run(["userdel", user], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
