#!/usr/bin/env bash
# Full recreate of the stack (auth, the live api color, proxy) with new OAuth keys.
# Every ChatGPT session ends, so `inv rebuild-all` asks first. Nothing is deleted before
# the new images are built and the keys directory and oauth.db are copied, and the copy
# checked, into a timestamped backup folder.
set -Eeuo pipefail

usage() {
  cat <<'USAGE'
usage: rebuild-all.sh [--performer NAME] [--health-timeout SECONDS] [--verify-seconds SECONDS]
USAGE
}

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

HEALTH_TIMEOUT=120
VERIFY_SECONDS=30

# Copy keys/ and oauth.db to a new backup folder, check the copy, print the folder.
backup_oauth() {
  local dest item
  dest=$LOOP_STATE_DIR/backups/oauth-$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$dest"
  chmod 700 "$LOOP_STATE_DIR/backups" "$dest"
  : >"$dest/SHA256SUMS"
  for item in keys oauth.db; do
    if [[ -e $OAUTH_DIR/$item ]]; then
      cp -a "$OAUTH_DIR/$item" "$dest/"
      (cd "$OAUTH_DIR" && find "$item" -type f -exec sha256sum {} +) >>"$dest/SHA256SUMS"
    fi
  done
  (cd "$dest" && sha256sum --check --quiet SHA256SUMS) || die "backup in $dest does not match the originals: nothing deleted"
  echo "$dest"
}

main() {
  parse_flags "$@"
  ((${#EXTRA_FLAGS[@]} == 0)) || { usage >&2; exit 64; }
  load_stack_env
  local commit color backup
  commit=$(head_commit)
  take_lock rebuild-all "$commit"
  trap release_lock EXIT
  color=$(live_color)
  color=${color:-blue}

  step "rebuild-all $commit: building loop-api:$commit and loop-auth"
  build_color "$color" "$commit"
  compose build auth

  backup=$(backup_oauth)
  step "backed up OAuth keys and database to $backup"
  rm -rf "${OAUTH_DIR:?}/keys" "${OAUTH_DIR:?}/oauth.db"

  step "recreating auth, $(container "$color") and proxy (new OAuth keys)"
  mv -f "$(write_candidate "$color" "$commit")" "$UPSTREAM"
  color_compose "$color" "$commit" up -d --no-build --force-recreate auth "api-$color" proxy
  wait_healthy loop-auth "$HEALTH_TIMEOUT" || die "loop-auth did not become healthy; the backup is in $backup"
  wait_healthy "$(container "$color")" "$HEALTH_TIMEOUT" || die "$(container "$color") did not become healthy"
  verify_through_proxy "$color" "$VERIFY_SECONDS" || die "verification through the proxy failed"
  record_release rebuild-all "$commit" "$color"
  prune_images
  step "rebuilt everything at $commit on $color; OAuth keys are new"
  echo "backup: $backup"
}

main "$@"
