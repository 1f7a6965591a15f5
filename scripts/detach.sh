#!/usr/bin/env bash
# Run one of the change scripts in its own session with its output in a log file, and
# stream that log. If the SSH session that started it drops, only the streaming stops:
# the script finishes (or backs out) and releases its lock on its own.
set -Eeuo pipefail

# shellcheck source=lib.sh
. "${BASH_SOURCE%/*}/lib.sh"

usage() {
  cat <<USAGE
usage: detach.sh deploy-blue-green|rollback|rebuild-all|restart [FLAGS...]

Runs SCRIPT.sh from this folder detached (setsid), logging to $LOOPCTL_HOME/$RUNS_DIR/,
and streams the log; exits with the script's status. \`detach.sh SCRIPT --help\` shows its flags.
USAGE
}

main() {
  local name=${1:-} id log pid runs=$LOOPCTL_HOME/$RUNS_DIR
  # Only the known scripts: sudoers may allow this one, it must not run anything else.
  case $name in
    --help | -h) usage; exit 0 ;;
    deploy-blue-green | rollback | rebuild-all | restart) shift ;;
    *) usage_error ;;
  esac
  if [[ ${1:-} == --help ]]; then
    exec "$(dirname "$0")/$name.sh" --help
  fi
  mkdir -p "$runs"
  find "$runs" -type f -mtime +30 -delete
  id=$(date -u +%Y%m%dT%H%M%SZ)-$name-$$
  log=$runs/$id.log
  : >"$log"
  # shellcheck disable=SC2016  # expanded by the inner bash: $1 is the log, then the command
  setsid bash -c '"${@:2}" >"$1" 2>&1 </dev/null; echo $? >"$1.rc"' detached "$log" \
    "$(dirname "$0")/$name.sh" "$@" &
  pid=$!
  step "$name runs on the NAS as $id (log: $log)"
  tail -n +1 -s 0.2 --pid="$pid" -f "$log" || true
  [[ -s $log.rc ]] || die "$name ended without an exit status; see $log"
  exit "$(cat "$log.rc")"
}

main "$@"
