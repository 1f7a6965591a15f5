#!/usr/bin/env bash
# Stop the sandbox NAS: its sshd and the LOOP containers. Users, images, repositories and
# /var/lib/loop-rig stay, so rig/up.sh brings it back quickly.
set -Eeuo pipefail

readonly STATE=${RIG_STATE:-/var/lib/loop-rig}

if [[ -s $STATE/sshd.pid ]] && kill -0 "$(cat "$STATE/sshd.pid")" 2>/dev/null; then
  kill "$(cat "$STATE/sshd.pid")"
  echo "==> stopped the sandbox sshd"
fi
if docker info >/dev/null 2>&1; then
  docker rm -f loop-proxy loop-api-blue loop-api-green loop-auth >/dev/null 2>&1 || true
  docker network rm loop_default >/dev/null 2>&1 || true
  echo "==> removed the LOOP containers"
fi
