#!/usr/bin/env bash
# Zero-downtime deploy of the checked-out commit: build the idle color, wait until it is
# healthy, switch nginx to it, verify through the proxy, then stop (not remove) the old
# color so `rollback.sh` can bring it back in seconds.
#
# Any failure before the switch is verified is undone (traffic back, new container removed),
# so the old color never stops serving. Run it through detach.sh so that a dropped SSH
# session cannot interrupt it half-way.
set -Eeuo pipefail

usage() {
  cat <<'USAGE'
usage: deploy-blue-green.sh [--performer NAME] [--health-timeout SECONDS] [--verify-seconds SECONDS]
USAGE
}

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

HEALTH_TIMEOUT=120
VERIFY_SECONDS=30

main() {
  parse_flags "$@"
  ((${#EXTRA_FLAGS[@]} == 0)) || { usage >&2; exit 64; }
  load_stack_env
  local commit old_commit="" t0 t_built t_healthy
  commit=$(head_commit)
  take_lock deploy "$commit"
  trap finish_change EXIT

  live=$(live_color)
  target=$(other_color "${live:-green}")
  [[ -z $live ]] || old_commit=$(color_commit "$live")
  step "deploy $commit: live is ${live:-nothing} (${old_commit:-none}), building $target"

  t0=$(ms_now)
  build_color "$target" "$commit"
  t_built=$(ms_now)
  step "built loop-api:$commit in $(elapsed "$t0" "$t_built")"

  if [[ -z $(docker ps -aq --filter name='^loop-auth$') ]]; then
    step "first deploy: starting the auth service"
    compose up -d --build auth
  fi

  brought_up=created
  start_color "$target" "$commit"
  step "waiting for $(container "$target") to be healthy (up to ${HEALTH_TIMEOUT}s)"
  wait_healthy "$(container "$target")" "$HEALTH_TIMEOUT" || die "$(container "$target") did not become healthy"
  t_healthy=$(ms_now)

  switch_and_verify "$commit"
  record_release deploy "$commit" "$target"
  prune_images
  step "deployed $commit on $target"
  printf 'summary: old=%s new=%s color=%s build=%s healthy=%s switch=%s verify=%s\n' \
    "${old_commit:-none}" "$commit" "$target" "$(elapsed "$t0" "$t_built")" "$(elapsed "$t_built" "$t_healthy")" \
    "$(elapsed "$t_healthy" "$T_SWITCHED")" "$(elapsed "$T_SWITCHED" "$T_VERIFIED")"
}

main "$@"
