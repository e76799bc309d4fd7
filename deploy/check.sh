#!/usr/bin/env bash
# Verifies the deploy files without a container engine: the systemd unit with
# `systemd-analyze verify`, the compose file with `docker compose config` (or docker-compose),
# and the compose example config with `worker check`. Installs the checkers when missing (Debian).
set -euo pipefail
cd "$(dirname "$0")"
need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
    if need apt-get; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
    fi
}

need systemd-analyze || apt_install systemd
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# verify needs the ExecStart binary to exist: point it at a stand-in with the same name
mkdir -p "$tmp/bin"; printf '#!/bin/sh\n' > "$tmp/bin/worker"; chmod +x "$tmp/bin/worker"
sed "s|/opt/worker/venv/bin/worker|$tmp/bin/worker|" worker.service > "$tmp/worker.service"
out=$(systemd-analyze verify "$tmp/worker.service" 2>&1 || true)
if [ -n "$out" ] && printf '%s\n' "$out" | grep -v -e 'Documentation=' -e 'file:///opt/worker' | grep -q .; then
    printf 'systemd-analyze verify:\n%s\n' "$out" >&2; exit 1
fi
echo "systemd unit: OK"

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    need docker-compose || apt_install docker-compose
    compose=(docker-compose)
fi
POSTGRES_PASSWORD=x "${compose[@]}" -f compose.yaml config -q
echo "compose file: OK (${compose[*]})"

WORKER_DATABASE_PASSWORD=x python3 -m worker --config config/worker.toml check
