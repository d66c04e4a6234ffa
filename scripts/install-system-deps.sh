#!/usr/bin/env bash
# Install the Debian packages the test suite needs, when they are missing.
#
# Idempotent: when every package is already installed it does nothing (no apt-get update,
# no network). Runs apt-get through sudo only when not root. Debian/Ubuntu only.
set -euo pipefail

# docker-compose: `docker-compose config` validates docker-compose.yml (tests/test_compose.py).
PACKAGES=(
    docker-compose
    prometheus prometheus-alertmanager
    chromium
    # nats-server: the JetStream broker the bus consumer's tests run against (tests/integration/test_bus.py).
    nats-server
    # openssh-server, supervisor: the SSH test host (tests/sshhost.py): an sshd that trusts only
    # OpenBao's SSH CA, in front of a small service run by supervisord.
    openssh-server supervisor sudo
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    # dpkg -s succeeds for removed-but-configured packages too; check the status line.
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: missing ${missing[*]} and apt-get is not available;" \
         "install them with your package manager" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-system-deps: missing ${missing[*]}; run as root or install sudo" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
