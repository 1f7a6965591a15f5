#!/usr/bin/env bash
# Full recreate of the stack (the app's other services, the live api color, the proxy) with
# new OAuth keys. Every ChatGPT session ends, so `inv rebuild-all` asks first. Nothing is
# deleted before the new images are built and the OAuth folder is copied, and the copy
# checked, into a timestamped backup folder only root can read.
set -Eeuo pipefail

# shellcheck source=lib-change.sh
. "$(dirname "$0")/lib-change.sh"

VERIFY_SECONDS=$DEPLOY_VERIFY_SECONDS

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

# Copy the OAuth folder (keys/, oauth.db) to a new backup folder, check the copy, print the
# folder. An empty or missing OAuth folder (no keys yet) backs up nothing and says so. The app
# can write that folder and swap it for a link at any time: everything here happens inside it
# (cd -P, then relative paths), so nothing outside it is ever copied or deleted.
backup_oauth() {
  local dest
  dest=$LOOPCTL_HOME/$BACKUPS_DIR/oauth-$(date -u +%Y%m%dT%H%M%SZ)
  install -d -m 0700 "$LOOPCTL_HOME/$BACKUPS_DIR"
  install -d -m 0700 "$dest"
  if [[ -z $(ls -A "$OAUTH_DIR" 2>/dev/null) ]]; then
    echo "no OAuth keys or database in $OAUTH_DIR yet: nothing to back up" >"$dest/EMPTY"
    echo "$dest"
    return
  fi
  in_oauth_dir cp -a . "$dest/" || disk_full_or_die "copying $OAUTH_DIR to $dest failed: nothing deleted"
  chmod 0700 "$dest" # cp -a gave it the mode of the OAuth folder
  in_oauth_dir find . -type f -exec sha256sum {} + >"$dest.SHA256SUMS"
  (cd "$dest" && sha256sum --check --quiet "$dest.SHA256SUMS") ||
    die "backup in $dest does not match the originals: nothing deleted"
  mv "$dest.SHA256SUMS" "$dest/SHA256SUMS"
  echo "$dest"
}

# in_oauth_dir COMMAND...: run it inside the OAuth folder itself, refusing a link in its place.
in_oauth_dir() {
  (
    if ! cd -P -- "$OAUTH_DIR" || [[ $(pwd -P) != "$OAUTH_DIR" ]]; then
      die "$OAUTH_DIR is not a plain folder (a link?): nothing copied or deleted" "$EXIT_REFUSED"
    fi
    "$@"
  )
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
  trap '((RECOVERING)) || journal_clear; release_lock' EXIT
  recover_change
  install_release "$from" "$short"
  load_release "$short"
  proxy_host
  [[ -n $OAUTH_DIR ]] || die "the api mounts no OAuth folder (API_OAUTH_PATH): rebuild-all would replace no keys" "$EXIT_USAGE"
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
  local -a COMPOSE_PREFIX=(timeout --kill-after=10 "$BUILD_TIMEOUT")
  compose_release "$short" build "${services[@]}"
  COMPOSE_PREFIX=()

  backup=$(backup_oauth)
  step "backed up the OAuth folder $OAUTH_DIR to $backup"
  journal_set backup "$backup"
  journal_set step replace
  in_oauth_dir find . -mindepth 1 -maxdepth 1 -exec rm -rf {} +

  recreate_all "$short" "$color" "$backup"
  verify_through_proxy "$color" "$VERIFY_SECONDS" || die "verification through the proxy failed; the backup is in $backup"
  mcp_tools "http://$PROXY_HOST:$PROXY_PORT" "$color" || die "MCP through the proxy failed: $MCP_ERROR; the backup is in $backup"
  record_release rebuild-all "$short" "$API_REPO:$short" "$color"
  prune_releases || warn "pruning old releases failed"
  step "rebuilt everything at $short on $color; OAuth keys are new"
  echo "backup: $backup"
}

main "$@"
