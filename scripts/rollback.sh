#!/usr/bin/env bash
# Put the previous release back. With the warm standby running (KEEP_WARM), that is a switch:
# nginx to the other color, verify, and the replaced one stays up as the new standby.
# Otherwise start the other color's kept container (or recreate it from a kept release with
# --to), wait until healthy, check MCP, then switch.
# Right after a takeover, the previous release is the app's own container: it gets its port
# back, exactly as it ran before. Nothing is built.
set -Eeuo pipefail

. "${BASH_SOURCE%/*}/lib.sh"
. "${BASH_SOURCE%/*}/lib-change.sh"

usage() {
  cat <<USAGE
usage: rollback.sh [--to COMMIT] [FLAGS]

  --to COMMIT           a kept release (its commit id or a prefix) instead of the previous one
  --performer NAME      who rolls back, for the lock and the history (default: unknown)
  --health-timeout S    seconds the release has to become healthy (default: $HEALTH_TIMEOUT)
  --verify-seconds S    seconds of requests through the proxy after the switch (default: $ROLLBACK_VERIFY_SECONDS)
  --help                this text

Exit: 0 rolled back; $EXIT_FAILED failed, the live release still serves; $EXIT_USAGE bad usage;
$EXIT_NOTHING_TO_ROLL_BACK nothing to roll back to; $EXIT_LOCKED another change holds the lock.
USAGE
}

# kept_tag PREFIX: the one kept release whose commit starts with PREFIX (or is a prefix of it).
kept_tag() {
  local dir tag matches=()
  for dir in "$LOOPCTL_HOME/$RELEASES_DIR"/*; do
    tag=$(basename "$dir")
    [[ -d $dir && $tag =~ ^[0-9a-f]{12}$ ]] || continue
    if [[ $tag == "$1"* || $1 == "$tag"* ]] && docker image inspect "$API_REPO:$tag" >/dev/null 2>&1; then
      matches+=("$tag")
    fi
  done
  ((${#matches[@]} == 1)) && echo "${matches[0]}"
}

kept_tags() {
  docker image ls "$API_REPO" --format '{{.Tag}}' | grep -E '^[0-9a-f]{12}$' | tr '\n' ' '
}

# previous_release CURRENT: the newest released commit other than CURRENT still kept
# (its image and definition), or "app" when that is the app's own container of a takeover.
previous_release() {
  local commit
  for commit in $(tac "$RELEASES" 2>/dev/null | cut -f3); do
    [[ $commit != "$1" ]] || continue
    if [[ $commit == app ]]; then
      [[ -z $(app_container any) ]] || echo app
      return 0
    fi
    if [[ -f $(release_dir "$commit")/$RELEASE_ENV_FILE ]] && docker image inspect "$API_REPO:$commit" >/dev/null 2>&1; then
      echo "$commit"
      return
    fi
  done
}

# Back to the app's own container: the proxy gives the port back, the stack stops.
rollback_to_app() {
  LEGACY_CONTAINER=$(app_container any)
  target=app
  step "rollback: live is $live ($current), giving port $PROXY_PORT back to $LEGACY_CONTAINER (the app's own container)"
  journal op=rollback "live=$live" target=app step=oauth
  # Its compose mounts the checkout's OAuth folder: it gets what the volume holds now.
  move_oauth_out
  journal_set step switch
  switched=1
  give_port_to_app
  T_SWITCHED=$(ms_now)
  step "verifying $LEGACY_CONTAINER on port $PROXY_PORT for ${VERIFY_SECONDS}s"
  wait_port_answers || die "$LEGACY_CONTAINER does not answer on port $PROXY_PORT"
  verify_through_proxy "" "$VERIFY_SECONDS" || die "$LEGACY_CONTAINER failed the verification"
  mcp_tools "http://$PROXY_HOST:$PROXY_PORT" || die "MCP on $LEGACY_CONTAINER failed: $MCP_ERROR"
  T_VERIFIED=$(ms_now)
  committed=1
  printf '%s\n' "$LEGACY_CONTAINER" >"$APP_LIVE"
  step "stopping $(container "$live") (kept)"
  docker stop -t 10 "$(container "$live")" >/dev/null || warn "could not stop $(container "$live")"
  record_release rollback app "$(docker inspect -f '{{.Config.Image}}' "$LEGACY_CONTAINER")" app
  step "rolled back to the app's own $LEGACY_CONTAINER"
  summary 'old=%s new=app color=app switch=%s verify=%s' "$current" \
    "$(elapsed "$T_START" "$T_SWITCHED")" "$(elapsed "$T_SWITCHED" "$T_VERIFIED")"
}

# The rollback's own choices, beside the change's state (lib-change.sh): to (--to: a commit
# prefix, "" for the previous release), current (the commit live runs), kept (the commit the
# other color's container holds, "" for none), tag (the commit brought back, "app" for the app's
# own container). Set by rollback_flags, find_current and choose_release; read by main and
# rollback_to_app.
to="" current="" kept="" tag=""

# rollback_flags ARGS...: the flags every change takes (parse_flags) and --to.
rollback_flags() {
  local flag
  VERIFY_SECONDS=$ROLLBACK_VERIFY_SECONDS
  parse_flags "$@"
  for flag in ${EXTRA_FLAGS[@]+"${EXTRA_FLAGS[@]}"}; do
    case $flag in
      to=*) to=${flag#to=} ;;
      *) usage_error ;;
    esac
  done
  [[ -z $to || $to =~ ^[0-9a-f]{4,40}$ ]] || die "--to expects a commit id (hex), got '$to'" "$EXIT_USAGE"
}

# find_current: the live color and the commit it runs, whose release is loaded: what the
# rollback goes back from.
find_current() {
  live=$(live_color)
  [[ -n $live ]] || die "nothing is deployed: no previous release to roll back to" "$EXIT_NOTHING_TO_ROLL_BACK"
  [[ $live != app ]] || die "the app's own container serves: there is no loopctl release to roll back from" "$EXIT_NOTHING_TO_ROLL_BACK"
  # What the rollback decides from, Docker's view in one look (refuse_unsafe_home took it; the
  # repair of a change cut short, when there was one, took it again).
  current=$(seen "$(container "$live")" image)
  current=${current##*:}
  # The live color's container removed by hand: the history says what it ran.
  [[ -n $current ]] || current=$(awk -F'\t' -v color="$live" '$5 == color { commit = $3 } END { print commit }' "$RELEASES" 2>/dev/null)
  [[ -n $current ]] || die "the live color $live has no container and no record: deploy again with 'inv rebuild'" "$EXIT_NOTHING_TO_ROLL_BACK"
  load_release "$current"
  proxy_host
}

# choose_release: the target (the other color) and the release to bring back there: --to's, the
# one the target's container still holds, or the newest one before current that is kept.
choose_release() {
  target=$(other_color "$live")
  kept=$(seen "$(container "$target")" image)
  kept=${kept##*:}
  if [[ -n $to ]]; then
    tag=$(kept_tag "$to") || die "no kept release matches '$to'; kept: $(kept_tags)" "$EXIT_NOTHING_TO_ROLL_BACK"
    [[ $tag != "$current" ]] || die "$tag is already live" "$EXIT_NOTHING_TO_ROLL_BACK"
  elif [[ -n $kept && $kept != "$current" && -f $(release_dir "$kept")/$RELEASE_ENV_FILE ]]; then
    tag=$kept
  else
    tag=$(previous_release "$current")
    [[ -n $tag ]] || die "no previous release to roll back to" "$EXIT_NOTHING_TO_ROLL_BACK"
  fi
}

# bring_back: tag's container on the target, started if it is kept there or recreated from its
# release, healthy, and through the MCP gate when it was not serving.
bring_back() {
  load_release "$tag"
  if [[ $kept == "$tag" ]]; then refuse_stale_layout "$tag" "$(container "$target")"; else refuse_stale_layout "$tag"; fi
  step "rollback: live is $live ($current), bringing back $tag on $target"
  journal op=rollback "commit=$tag" "live=$live" "target=$target" step=start
  if [[ $kept == "$tag" ]]; then
    if [[ $(seen "$(container "$target")" running) != true ]]; then
      bring_up started
      check_release_bind_sources
      docker start "$(container "$target")" >/dev/null
    fi
  else
    retire_standby
    require_oauth_volume
    bring_up created
    ensure_shared_objects
    compose_release "$tag" up -d --no-deps --no-build --force-recreate "$(container "$target")"
  fi
  journal_set step health
  if [[ -z $brought_up && $(seen "$(container "$target")" health) == healthy ]]; then
    printf '    %s: healthy\n' "$(container "$target")"
  else
    wait_healthy "$(container "$target")" "$HEALTH_TIMEOUT" || die "$(container "$target") did not become healthy"
  fi
  if [[ -n $brought_up ]]; then
    # A release that was not serving is checked before it gets traffic; going back to fewer
    # tools is what a rollback may mean.
    ALLOW_TOOL_REMOVAL=1
    mcp_gate
  fi
}

main() {
  local t_healthy
  rollback_flags "$@"
  load_stack_env
  refuse_unsafe_home
  take_lock rollback "${to:-previous}"
  trap finish_change EXIT
  recover_change
  if [[ -z $to && $RECOVERED == deploy\ * ]]; then
    # The change to roll back was that deploy, and undoing it was the rollback.
    step "the interrupted deploy was undone: ${RECOVERED#* undone; }; nothing more to roll back"
    committed=1
    return
  fi
  T_START=$(ms_now)
  find_current
  choose_release
  if [[ $tag == app ]]; then
    rollback_to_app
    return
  fi
  bring_back
  t_healthy=$(ms_now)

  switch_and_verify
  retire_old
  record_release rollback "$tag" "$API_REPO:$tag" "$target"
  step "rolled back to $tag on $target"
  summary 'old=%s new=%s color=%s healthy=%s switch=%s verify=%s' \
    "$current" "$tag" "$target" "$(elapsed "$T_START" "$t_healthy")" \
    "$(elapsed "$t_healthy" "$T_SWITCHED")" "$(elapsed "$T_SWITCHED" "$T_VERIFIED")"
}

main "$@"
