#!/usr/bin/env bash
# Debian packages the sandbox NAS and the tests need (run as root). The NAS side: OpenSSH,
# sudo, Docker with Compose v1 (the only one Debian ships; the NAS has v2, both work),
# debootstrap for the base image. The workstation side: git, shellcheck, nginx for tests. gawk
# (DSM's awk) beside mawk and busybox's for the scripts' parsing tests; awk stays mawk, the
# strictest of the three, for everything else.
set -Eeuo pipefail

packages=(docker.io docker-compose openssh-server openssh-client sudo git debootstrap shellcheck
  nginx-light curl ca-certificates openssl util-linux procps iproute2 python3-venv busybox gawk)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "==> apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Installing gawk makes it awk; the scripts are tested under mawk, Debian's own.
[[ $(readlink -f /usr/bin/awk) == /usr/bin/mawk ]] || update-alternatives --quiet --set awk /usr/bin/mawk
