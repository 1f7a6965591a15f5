#!/usr/bin/env bash
# Zero-downtime deploy of one commit: build it as the idle color, wait until it is healthy,
# check that it speaks MCP (the gate), switch nginx to it, verify through the proxy, and keep
# the old color running as the warm standby: the sessions it holds go on, and rollback.sh
# switches back to it at once (KEEP_WARM=0 stops it instead).
#
# Any failure before the switch is verified is undone (traffic back, new container removed),
# so the old color never stops serving. Run it through detach.sh so that a dropped SSH
# session cannot interrupt it half-way.
set -Eeuo pipefail

. "${BASH_SOURCE%/*}/lib.sh"
. "${BASH_SOURCE%/*}/lib-change.sh"

usage() {
  cat <<USAGE
usage: deploy-blue-green.sh --commit SHA --release DIR [FLAGS]

Builds SHA from an export of the app checkout (its tracked files only) as the idle color,
with the definition loopctl wrote from the app's compose file, and switches to it once it
is healthy. Where the app's own api container holds the port, the first deploy takes it over.

  --commit SHA          full commit id to deploy (required)
  --release DIR         folder holding stack.json and release.env from loopctl (required)
  --performer NAME      who deploys, for the lock and the history (default: unknown)
  --health-timeout S    seconds the new color has to become healthy (default: $HEALTH_TIMEOUT)
  --verify-seconds S    seconds of requests through the proxy after the switch (default: $DEPLOY_VERIFY_SECONDS)
  --build-timeout S     seconds the build may take before it is stopped (default: $BUILD_TIMEOUT)
  --allow-tool-removal  deploy even if the new release lists fewer MCP tools than the live one
  --help                this text

Exit: 0 deployed; $EXIT_FAILED failed, the live release still serves; $EXIT_USAGE bad usage;
$EXIT_DISK_FULL disk full; $EXIT_LOCKED another change holds the lock; $EXIT_REFUSED refused before any change.
USAGE
}

# The deploy's own choices, beside the change's state (lib-change.sh): takeover ("takeover"
# when the app's own container holds the port: the first deploy takes it over), old_commit (what
# live runs, for the first step line) and old_label (the same for the summary: none, app or a
# commit). Set by choose_colors; read by main.
takeover="" old_commit="" old_label=""

# choose_colors: live (what serves now: a color, the app's own container, or nothing) and the
# target the release is built as, from the upstream file and what runs; refused when that is
# unclear or the stack's names or port are someone else's.
choose_colors() {
  live=$(live_color)
  if [[ -z $live ]]; then
    # Nothing says which color is live, yet one runs: that one is what served last. A deploy
    # must never recreate a running color.
    local running_colors
    running_colors=$(for c in blue green; do is_running "$(container "$c")" && echo "$c"; done || true)
    case $(wc -w <<<"$running_colors") in
      1) live=$running_colors; warn "the upstream file is missing or garbled; $live runs, so it is taken as live" ;;
      2) die "both colors run and nothing says which is live (upstream file missing or garbled): stop the one that should not serve" "$EXIT_REFUSED" ;;
    esac
  fi
  if [[ $live == blue || $live == green ]] && ! is_running "$(container "$live")" &&
    [[ $(upstream_standby) == "$(other_color "$live")" ]] && is_running "$(container "$(other_color "$live")")"; then
    # The proxy sends the requests of a live color that is down to the standby: that one
    # serves, and stays; the new release takes the place of the one that is down.
    warn "the live color $live's container does not run; the standby $(other_color "$live") serves its requests: deploying in $live's place"
    live=$(other_color "$live")
  fi
  takeover=$(check_names_and_port)
  if [[ -n $takeover ]]; then
    LEGACY_CONTAINER=$(app_container any)
    live=app
  elif [[ $live == app ]]; then
    die "$APP_LIVE says the app's own container serves, but it does not hold port $PROXY_PORT: check 'inv status'" "$EXIT_REFUSED"
  fi
  target=$(other_color "${live:-green}")
  [[ $live != app ]] || target=blue
  case $live in
    "") old_commit=none old_label=none ;;
    app) old_commit=$LEGACY_CONTAINER old_label=app ;;
    *) old_commit=$(color_commit "$live") old_label=$old_commit ;;
  esac
}

# start_target: the OAuth state where the release mounts it, then the target's container
# created on the release and waited for until healthy.
start_target() {
  ensure_shared_objects
  # The OAuth state into the release's volume: the first time, and whenever what served until
  # now mounts the app's folder (the app's own container, or a color an older loopctl made):
  # that folder holds what is current.
  if [[ $live == app ]] || { [[ -n $live ]] && keeps_oauth_in_checkout "$(container "$live")"; }; then
    move_oauth_in always
  else
    move_oauth_in first
  fi
  retire_standby
  bring_up created
  journal_set step start
  compose_release "$SHORT" up -d --no-deps --no-build --force-recreate "$(container "$target")"
  step "waiting for $(container "$target") to be healthy (up to ${HEALTH_TIMEOUT}s)"
  journal_set step health
  wait_healthy "$(container "$target")" "$HEALTH_TIMEOUT" || die "$(container "$target") did not become healthy"
}

main() {
  parse_flags "$@"
  parse_release_flags allow-tool-removal
  local commit=$COMMIT_ARG from=$RELEASE_FROM
  load_stack_env
  local short=${commit:0:12} t0 t_built t_healthy services
  LEGACY_CONTAINER=""
  take_lock deploy "$short"
  trap finish_change EXIT
  recover_change
  install_release "$from" "$short"
  load_release "$short"
  # shellcheck disable=SC2153  # COMMIT is the release's field
  [[ $COMMIT == "$commit" ]] || die "the release definition names $COMMIT, not $commit" "$EXIT_USAGE"
  proxy_host

  choose_colors
  step "deploy $short: live is ${live:-nothing} (${old_commit:-none}), building $target"
  journal op=deploy "commit=$short" "live=$live" "target=$target" step=build

  t0=$(ms_now)
  export_commit "$commit"
  services=("$(container "$target")")
  [[ -z $BUILD_SERVICES ]] || read -ra services <<<"$(container "$target") ${BUILD_SERVICES//,/ }"
  note_images
  build "$short" "${services[@]}"
  t_built=$(ms_now)
  step "built $API_REPO:$short in $(elapsed "$t0" "$t_built")"

  start_target
  t_healthy=$(ms_now)
  journal_set step gate
  mcp_gate
  # The app's other services change only for a release that passed the gate.
  update_aux

  if [[ -n $takeover ]]; then
    takeover_and_verify
    record_release adopted app "$(docker inspect -f '{{.Config.Image}}' "$LEGACY_CONTAINER")" app
  else
    switch_and_verify
  fi
  retire_old
  record_release deploy "$short" "$API_REPO:$short" "$target"
  prune_releases || warn "pruning old releases failed"
  step "deployed $short on $target"
  summary 'old=%s new=%s color=%s build=%s healthy=%s gate=%s aux=%s switch=%s verify=%s tools=%s' \
    "${old_label:-none}" "$short" "$target" "$(elapsed "$t0" "$t_built")" "$(elapsed "$t_built" "$t_healthy")" \
    "$(elapsed 0 "$T_GATE")" "$(elapsed 0 "$T_AUX")" "$(elapsed "$((t_healthy + T_GATE + T_AUX))" "$T_SWITCHED")" \
    "$(elapsed "$T_SWITCHED" "$T_VERIFIED")" "$TOOLS_SUMMARY"
}

main "$@"
