#!/usr/bin/env bash
# Run one of the change scripts in its own session with its output in a log file, and
# stream that log. If the SSH session that started it drops, only the streaming stops:
# the script finishes (or backs out) and releases its lock on its own.
set -Eeuo pipefail

. "${BASH_SOURCE%/*}/lib.sh"

usage() {
  cat <<USAGE
usage: detach.sh deploy-blue-green|rollback|rebuild-all|restart [FLAGS...]

Runs SCRIPT.sh from this folder detached (setsid), logging to $LOOPCTL_HOME/$RUNS_DIR/ID.log
(kept 30 days; \`inv run-log\` shows it), and streams the whole log: loopctl shows its marked
lines (${STEP_PREFIX}steps, ${WARNING_PREFIX}...) and keeps the rest for a failure or --verbose.
Exits with the script's status ($EXIT_STILL_RUNNING: the wrapper that waits for it
ended first, and the script still runs). \`detach.sh SCRIPT --help\` shows its flags.
USAGE
}

main() {
  local name=${1:-} id log pid script runs=$LOOPCTL_HOME/$RUNS_DIR
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
  # The wrapper starts the script, notes its pid, and writes its exit status when it ends.
  # shellcheck disable=SC2016  # expanded by the inner bash: $1 is the log, then the command
  setsid bash -c '"${@:2}" >"$1" 2>&1 </dev/null & echo $! >"$1.pid"; wait $!; echo $? >"$1.rc"' detached "$log" \
    "$(dirname "$0")/$name.sh" "$@" &
  pid=$!
  step "$name runs on the NAS as $id (log: $log)"
  summary 'run=%s log=%s' "$id" "$log"
  # Polled every 50 ms: the end of a rollback shows at once.
  tail -n +1 -s 0.05 --pid="$pid" -f "$log" || true
  # Reaped quietly: bash would report a killed wrapper on stderr.
  { wait "$pid"; } 2>/dev/null || true
  [[ ! -s $log.rc ]] || exit "$(cat "$log.rc")"
  # The wrapper is gone without a status (killed): the script may well go on without it.
  script=$(cat "$log.pid" 2>/dev/null || true)
  if [[ $script =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$script/cmdline" 2>/dev/null | grep -qF "/$name.sh"; then
    printf '%s still runs on the NAS (its wrapper ended; log: %s)\n' "$name" "$log" >&2
    exit "$EXIT_STILL_RUNNING"
  fi
  die "$name ended without an exit status; see $log"
}

main "$@"
