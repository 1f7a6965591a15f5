#!/usr/bin/env bash
# Try loopctl without a NAS (Debian 12, as root): installs what it needs, starts the sandbox
# NAS on this machine (rig/up.sh), deploys the example MCP app with `inv rebuild`, deploys a
# change, then shows status, health, mcp-check, rollback and logs working against it.
# The sandbox keeps running afterwards; rig/down.sh stops it.
set -Eeuo pipefail
cd "$(dirname "$0")"

rig/install-packages.sh
[[ -x .venv/bin/python ]] || python3 -m venv .venv
# The test requirements too: bench/bench.py, run against this sandbox, uses the MCP SDK's clients.
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
rig/up.sh

export LOOP_ENV_FILE=${RIG_STATE:-/var/lib/loop-rig}/nas.env
workstation=$(sed -n 's/^LOCAL_REPO=//p' "$LOOP_ENV_FILE")

run() {
  printf '\n\033[1m$ inv %s\033[0m\n' "$*"
  .venv/bin/inv "$@"
}

run setup
run rebuild
# A visible change to deploy next, so that rollback has a previous release to go back to.
sed -i "s/^SANDBOX_RELEASE = .*/SANDBOX_RELEASE = \"$(date -u +%H:%M:%S)\"/" "$workstation/api/main.py"
grep -q '^SANDBOX_RELEASE = ' "$workstation/api/main.py" ||
  printf '\nSANDBOX_RELEASE = "%s"\n' "$(date -u +%H:%M:%S)" >>"$workstation/api/main.py"
git -C "$workstation" commit -qam "sandbox: a change to deploy"
run rebuild
run status
run health
run mcp-check
run rollback
run logs --tail 20

cat <<DONE

The sandbox NAS keeps running. Try any verb against it:
  export LOOP_ENV_FILE=$LOOP_ENV_FILE
  .venv/bin/inv --list
Stop it with: rig/down.sh
DONE
