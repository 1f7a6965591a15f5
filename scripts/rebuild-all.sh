#!/usr/bin/env bash
# Full recreate of the stack (the app's other services, the live api color, the proxy) with
# new OAuth keys. Every ChatGPT session ends, so `inv rebuild-all` asks first. Nothing is
# deleted before the new images are built and the OAuth volume's content is copied, and the
# copy checked, into a timestamped backup folder only root can read (lib-oauth.sh).
set -Eeuo pipefail

. "${BASH_SOURCE%/*}/lib.sh"
. "${BASH_SOURCE%/*}/lib-change.sh"

usage() {
  cat <<USAGE
usage: rebuild-all.sh --commit SHA --release DIR [FLAGS]

  --commit SHA          full commit id to build (required)
  --release DIR         folder holding stack.json and release.env from loopctl (required)
  --performer NAME      who rebuilds, for the lock and the history (default: unknown)
  --health-timeout S    seconds each container has to become healthy (default: $HEALTH_TIMEOUT)
  --verify-seconds S    seconds of requests through the proxy at the end (default: $DEPLOY_VERIFY_SECONDS)
  --build-timeout S     seconds the build may take before it is stopped (default: $BUILD_TIMEOUT)
  --help                this text
USAGE
}

# EXIT trap: rebuild-all has no undo (the backup of the keys is the way back, and its errors
# name it). Containers it paused run again, its journal goes (unless this run was repairing a
# change cut short: that journal stays for the next), and the lock is released.
finish_rebuild_all() {
  resume_writers
  ((RECOVERING)) || journal_clear
  release_lock
}

main() {
  parse_flags "$@"
  # shellcheck disable=SC2119  # its arguments name optional flags a script takes: none here
  parse_release_flags
  local commit=$COMMIT_ARG from=$RELEASE_FROM
  local color backup services
  load_stack_env
  local short=${commit:0:12}
  take_lock rebuild-all "$short"
  trap finish_rebuild_all EXIT
  recover_change
  install_release "$from" "$short"
  load_release "$short"
  proxy_host
  [[ -n $OAUTH_VOLUME ]] || die "the api mounts no OAuth folder (API_OAUTH_PATH): rebuild-all would replace no keys" "$EXIT_USAGE"
  color=$(live_color)
  [[ $color != app ]] || die "the app's own container serves: run 'inv rebuild' first (it takes the port over), then rebuild-all" "$EXIT_REFUSED"
  color=${color:-blue}
  local holder
  holder=$(check_names_and_port)
  [[ -z $holder ]] || die "the app's own container holds port $PROXY_PORT: run 'inv rebuild' first" "$EXIT_REFUSED"

  step "rebuild-all $short: building $API_REPO:$short and ${BUILD_SERVICES:-nothing else}"
  journal op=rebuild-all "commit=$short" "target=$color" step=build
  export_commit "$commit"
  read -ra services <<<"$(container "$color") ${BUILD_SERVICES//,/ }"
  build "$short" "${services[@]}"

  # The state moves into the volume first if it has not yet (the keys being replaced are backed up
  # either way).
  move_oauth_in first
  backup=$(backup_volume "$OAUTH_VOLUME" "$API_REPO:$short")
  step "backed up the OAuth volume $OAUTH_VOLUME to $backup"
  journal_set backup "$backup"
  journal_set step replace
  empty_volume "$OAUTH_VOLUME" "$API_REPO:$short"

  recreate_all "$short" "$color" "$backup"
  verify_through_proxy "$color" "$VERIFY_SECONDS" || die "verification through the proxy failed; the backup is in $backup"
  mcp_tools "http://$PROXY_HOST:$PROXY_PORT" "$color" || die "MCP through the proxy failed: $MCP_ERROR; the backup is in $backup"
  record_release rebuild-all "$short" "$API_REPO:$short" "$color"
  prune_releases || warn "pruning old releases failed"
  step "rebuilt everything at $short on $color; OAuth keys are new"
  summary 'new=%s color=%s backup=%s' "$short" "$color" "$backup"
}

main "$@"
