#!/usr/bin/env bash
# Append one audit record, a JSON line built by loopctl, to the NAS's audit trail.
# A script (not `tee`) so a least-privilege sudoers entry can allow exactly this.
set -Eeuo pipefail

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

record=${1:-}
if [[ $# -ne 1 || $record != '{'*'}' || $record == *$'\n'* ]]; then
  echo "usage: audit-append.sh '{...one JSON line...}'" >&2
  exit 64
fi
umask 022
mkdir -p "$LOOP_STATE_DIR"
exec 8>>"$LOOP_STATE_DIR/audit.jsonl"
flock 8
printf '%s\n' "$record" >&8
