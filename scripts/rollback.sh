#!/usr/bin/env bash
# Put the previous release back: start the other color's kept container (or recreate it from
# a kept image with --to), wait until healthy, switch nginx, verify, stop the bad one.
# With the previous container still present this takes seconds: nothing is built.
set -Eeuo pipefail

usage() {
  cat <<'USAGE'
usage: rollback.sh [--to COMMIT] [--performer NAME] [--health-timeout SECONDS] [--verify-seconds SECONDS]
USAGE
}

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

HEALTH_TIMEOUT=120
VERIFY_SECONDS=2

# The kept image tag for a commit id (either may be the longer one); fails unless exactly one.
kept_tag() {
  local tag matches=()
  for tag in $(docker image ls loop-api --format '{{.Tag}}'); do
    if [[ $tag == "$1"* || $1 == "$tag"* ]]; then matches+=("$tag"); fi
  done
  ((${#matches[@]} == 1)) && echo "${matches[0]}"
}

# The newest released commit other than the live one whose image is still kept.
previous_release() {
  local commit
  for commit in $(tac "$RELEASES" 2>/dev/null | cut -f3); do
    if [[ $commit != "$1" ]] && docker image inspect "loop-api:$commit" >/dev/null 2>&1; then
      echo "$commit"
      return
    fi
  done
}

main() {
  parse_flags "$@"
  local to="" flag
  for flag in "${EXTRA_FLAGS[@]}"; do
    case $flag in
      to=*) to=${flag#to=} ;;
      *) usage >&2; exit 64 ;;
    esac
  done
  [[ -z $to || $to =~ ^[0-9a-f]{4,40}$ ]] || die "--to expects a commit id (hex), got '$to'" 64
  load_stack_env
  take_lock rollback "${to:-previous}"
  trap finish_change EXIT

  live=$(live_color)
  [[ -n $live ]] || die "nothing is deployed: no previous release to roll back to" 69
  target=$(other_color "$live")
  local current kept tag t0 t_healthy
  current=$(color_commit "$live")
  kept=$(color_commit "$target")
  if [[ -n $to ]]; then
    tag=$(kept_tag "$to") || die "no kept image matches '$to'; kept: $(docker image ls loop-api --format '{{.Tag}}' | tr '\n' ' ')" 69
    [[ $tag != "$current" ]] || die "$tag is already live" 69
  else
    tag=${kept:-$(previous_release "$current")}
    [[ -n $tag ]] || die "no previous release to roll back to" 69
  fi
  step "rollback: live is $live ($current), bringing back $tag on $target"

  t0=$(ms_now)
  if [[ $kept == "$tag" ]]; then
    if ! is_running "$(container "$target")"; then
      brought_up=started
      docker start "$(container "$target")" >/dev/null
    fi
  else
    brought_up=created
    start_color "$target" "$tag"
  fi
  wait_healthy "$(container "$target")" "$HEALTH_TIMEOUT" || die "$(container "$target") did not become healthy"
  t_healthy=$(ms_now)

  switch_and_verify "$tag"
  record_release rollback "$tag" "$target"
  step "rolled back to $tag on $target"
  printf 'summary: old=%s new=%s color=%s healthy=%s switch=%s verify=%s\n' \
    "$current" "$tag" "$target" "$(elapsed "$t0" "$t_healthy")" \
    "$(elapsed "$t_healthy" "$T_SWITCHED")" "$(elapsed "$T_SWITCHED" "$T_VERIFIED")"
}

main "$@"
