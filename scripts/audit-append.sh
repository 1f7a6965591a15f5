#!/usr/bin/env bash
# Append one audit record, a JSON line built by loopctl, to the NAS's audit trail.
# A script (not `tee`) so a least-privilege sudoers entry can allow exactly this, and so what
# it appends is checked: one JSON object of the fields loopctl writes, printable text only.
set -Eeuo pipefail

. "${BASH_SOURCE%/*}/lib.sh"

usage() {
  cat <<'USAGE'
usage: audit-append.sh '{"args": {...}, "host": "...", "performer": "...", "seconds": N, "status": N, "time": "...Z", "verb": "..."}'

Appends the record (one line, keys in this order, as `json.dumps(sort_keys=True)` writes them)
to the audit trail. Anything else is refused with exit 64.
USAGE
}

# A JSON string of printable ASCII (json.dumps escapes the rest as \uXXXX), with no escaped
# control character either; an args object of flag names and plain values.
readonly STR='"([] !#-[^-~]|\\["\\/]|\\u([1-9a-fA-F][0-9a-fA-F]{3}|0[1-9a-fA-F][0-9a-fA-F]{2}|00[2-6a-fA-F][0-9a-fA-F]|007[0-9a-eA-E]))*"'
readonly VALUE="(true|false|null|-?[0-9]+|$STR)"
readonly ARGS="\\{(\"[a-z_]+\": $VALUE(, \"[a-z_]+\": $VALUE)*)?\\}"
readonly RECORD="^\\{\"args\": $ARGS, \"host\": $STR, \"performer\": $STR, \"seconds\": [0-9]+(\\.[0-9]+)?, \"status\": -?[0-9]+, \"time\": \"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\", \"verb\": \"[a-z-]+\"\\}$"

valid() { [[ ${#1} -le 4096 && $1 != *$'\n'* ]] && LC_ALL=C grep -qE "$RECORD" <<<"$1"; }

main() {
  [[ ${1:-} != --help ]] || { usage; exit 0; }
  # --check RECORD: only say (by the exit status) whether RECORD would be appended.
  if [[ ${1:-} == --check && $# -eq 2 ]]; then
    valid "$2"
    return
  fi
  if [[ $# -ne 1 ]] || ! valid "$1"; then usage_error; fi
  local record=$1
  mkdir -p "$STATE"
  install -d -m 0700 "$LOOPCTL_HOME/$LOCK_DIR"
  # The lock is root's own file: a reader holding a lock on audit.jsonl cannot block this.
  exec 8>>"$LOOPCTL_HOME/$LOCK_DIR/audit.lock"
  flock -w 10 8 || die "the audit trail is locked by someone else"
  printf '%s\n' "$record" >>"$LOOPCTL_HOME/$AUDIT_FILE"
}

main "$@"
