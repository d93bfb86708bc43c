#!/usr/bin/env bash
# Install the Debian packages the end-to-end tests run for real: dockerd, dnsmasq, rsync,
# containerd + ctr (the containerd image store), busybox (test images), nftables + iproute2 (filtered
# ports in throwaway namespaces), openssl, prometheus + promtool (opsbook serve end to end) and
# prometheus-blackbox-exporter and nginx (the TLS fleet of its benchmark).
# Idempotent and quick when everything is present. Needs root; otherwise it only reports.
set -euo pipefail

need=()
for pair in dockerd:docker.io dnsmasq:dnsmasq rsync:rsync containerd:containerd busybox:busybox-static \
            nft:nftables ip:iproute2 unshare:util-linux openssl:openssl \
            prometheus:prometheus promtool:prometheus prometheus-blackbox-exporter:prometheus-blackbox-exporter \
            nginx:nginx-light; do
    bin=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ] && [ ! -x "/sbin/$bin" ]; then
        need+=("$pkg")
    fi
done
if [ "${#need[@]}" -eq 0 ]; then
    echo "test peers: all present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "test peers missing (${need[*]}): run 'make test' as root to install them; the e2e tests need them" >&2
    exit 0
fi
echo "test peers: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# Services must not start at install time (no init here, and tests start their own instances).
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packaged dnsmasq service would hold port 53; the tests run their own instances.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now dnsmasq >/dev/null 2>&1 || true
    # Prometheus' own services would hold 9090/9115; the tests start their own on loopback.
    systemctl disable --now prometheus prometheus-blackbox-exporter nginx >/dev/null 2>&1 || true
fi
pkill -x dnsmasq 2>/dev/null || true
# nginx-light's package starts nginx on port 80 where it can; the benchmark runs its own.
pkill -x nginx 2>/dev/null || true
echo "test peers: installed"
