#!/usr/bin/env bash
# Restart the live api container with the checks of a deploy: under the deploy lock, after the
# repair of a change that was cut short (recover_change), and only if its mount sources are
# what they were (Docker follows links in them when it starts a container, and the app can
# turn a folder of the checkout into one). Then wait until it is healthy. It serves nothing
# meanwhile: `inv rebuild` is the way to a fresh container without a gap. Run it through
# detach.sh, as every change.
set -Eeuo pipefail

. "${BASH_SOURCE%/*}/lib.sh"
. "${BASH_SOURCE%/*}/lib-change.sh"

usage() {
  cat <<USAGE
usage: restart.sh [FLAGS]

Restarts the live color's api container (or the app's own container while that serves) and
waits until Docker reports it healthy.

  --performer NAME      who restarts, for the lock (default: unknown)
  --health-timeout S    seconds it has to become healthy again (default: $HEALTH_TIMEOUT)
  --help                this text

Exit: 0 restarted and healthy; $EXIT_FAILED failed (not healthy in time, or Docker failed); $EXIT_USAGE bad usage;
$EXIT_LOCKED another change holds the lock; $EXIT_REFUSED refused before anything changed (nothing live, its
container missing, a mount source that goes through a link).
USAGE
}

# find_live: RESTARTING, the container that serves, once its mount sources passed
# check_bind_sources: a color's are its release's (BIND_SOURCES), the app's own container's
# what Docker recorded when it was created. Refuses when nothing (or a missing container) serves.
find_live() {
  local color
  local -a sources=()
  color=$(live_color)
  # Before any deploy, the app's own compose container is what serves (as `inv status` says).
  if [[ -z $color && ! -e $UPSTREAM && -n $(app_container running) ]]; then color=app; fi
  case $color in
    "") die "nothing is live yet (no deploy has switched nginx): run 'inv rebuild' first" "$EXIT_REFUSED" ;;
    app)
      RESTARTING=$(app_container any)
      [[ -n $RESTARTING ]] || die "the app's own api container serves, but there is none: 'inv rebuild' deploys one" "$EXIT_REFUSED"
      mapfile -t sources < <(docker inspect -f '{{range .Mounts}}{{if eq .Type "bind"}}{{.Source}}{{"\n"}}{{end}}{{end}}' "$RESTARTING" | grep .)
      check_bind_sources ${sources[@]+"${sources[@]}"}
      ;;
    *)
      RESTARTING=$(container "$color")
      exists "$RESTARTING" ||
        die "the live color's container $RESTARTING is missing: 'inv rollback' or 'inv rebuild' puts a release back" "$EXIT_REFUSED"
      load_release "$(color_commit "$color")"
      check_release_bind_sources
      ;;
  esac
}

main() {
  local t0
  while (($#)); do
    case $1 in
      --help | -h) usage; exit 0 ;;
      --performer) [[ $# -ge 2 ]] || usage_error; PERFORMER=$(printable "$2"); shift 2 ;;
      --health-timeout) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage_error; HEALTH_TIMEOUT=$2; shift 2 ;;
      *) usage_error ;;
    esac
  done
  load_stack_env
  take_lock restart live
  trap finish_change EXIT
  recover_change
  find_live
  step "restarting $RESTARTING: the service is down until it is healthy again"
  t0=$(ms_now)
  docker restart "$RESTARTING" >/dev/null
  step "waiting for $RESTARTING to be healthy (up to ${HEALTH_TIMEOUT}s)"
  if ! wait_healthy "$RESTARTING" "$HEALTH_TIMEOUT"; then
    show_failure "$RESTARTING"
    die "$RESTARTING did not become healthy within ${HEALTH_TIMEOUT}s of its restart: see 'inv logs'"
  fi
  # Done: nothing for the exit trap to undo.
  committed=1
  step "$RESTARTING restarted and healthy in $(elapsed "$t0" "$(ms_now)")"
}

main "$@"
