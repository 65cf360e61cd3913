#!/usr/bin/env bash
# Install the Debian packages the project needs, only when one is missing.
set -euo pipefail
# The image (make image) and the real node (KS_REAL_NODE=1): mmdebstrap, buildah,
# podman and runc build and run it; containerd, the CNI plugins, iptables and
# conntrack run pods under a real kubelet and kube-proxy. prometheus: the monitoring API's
# tests and benchmark run a real one on loopback.
PKGS=(openssl ca-certificates redis-server slapd ldap-utils prometheus
      mmdebstrap buildah podman runc containerd containernetworking-plugins iptables conntrack)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
