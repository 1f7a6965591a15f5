# shellcheck shell=bash
# Shared by the NAS-side scripts: layout, logging, the deploy lock, compose, health waits,
# the nginx switch and the release history. Sourced, never run.
#
# Layout (installed by `inv setup`):
#   $LOOP_APP_DIR/.loopctl/{scripts,deploy,stack.env,MANIFEST}
#   $LOOP_APP_DIR/.loopctl/state/{nginx/upstream.conf,releases.tsv,audit.jsonl,deploy.lock,runs/,backups/}
# Exit codes: 0 done, 1 failed (the live color still serves), 64 bad usage,
# 69 nothing to roll back to, 75 another deploy holds the lock.

# Everything written here is world-readable (status reads it as the SSH user) unless a
# function says otherwise (backups).
umask 022

LOOPCTL_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOOP_APP_DIR=$(dirname "$LOOPCTL_HOME")
LOOP_STATE_DIR=$LOOPCTL_HOME/state
readonly LOOPCTL_HOME LOOP_APP_DIR LOOP_STATE_DIR
readonly UPSTREAM=$LOOP_STATE_DIR/nginx/upstream.conf
readonly RELEASES=$LOOP_STATE_DIR/releases.tsv
readonly LOCK=$LOOP_STATE_DIR/deploy.lock
readonly PROXY=loop-proxy
export LOOP_APP_DIR LOOP_STATE_DIR

step() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$1" >&2
  exit "${2:-1}"
}
ms_now() { date +%s%3N; }
# Seconds with one decimal from two millisecond stamps: `elapsed "$t0" "$t1"` -> 2.4s
elapsed() { printf '%d.%ds' $((($2 - $1) / 1000)) $(((($2 - $1) % 1000) / 100)); }

# Settings written by `inv setup`; the environment cannot override them under sudo anyway.
load_stack_env() {
  [[ -r $LOOPCTL_HOME/stack.env ]] || die "$LOOPCTL_HOME/stack.env is missing: run 'inv setup'" 64
  set -a
  # shellcheck source=/dev/null  # written by `inv setup`, not in the repository
  . "$LOOPCTL_HOME/stack.env"
  set +a
  [[ -x ${DOCKER:-} ]] || die "docker not found at '${DOCKER:-}' (NAS_DOCKER)" 64
  # Compose calls the docker CLI itself (to build), and on Synology it is not on PATH.
  PATH=$(dirname "$DOCKER"):$PATH
  export PATH
  if "$DOCKER" compose version >/dev/null 2>&1; then
    COMPOSE=("$DOCKER" compose)
  elif [[ -x $(dirname "$DOCKER")/docker-compose ]]; then
    COMPOSE=("$(dirname "$DOCKER")/docker-compose")
  elif command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
  else
    die "neither '$DOCKER compose' nor docker-compose is available" 64
  fi
}

compose() {
  "${COMPOSE[@]}" --env-file "$LOOPCTL_HOME/stack.env" -p loop -f "$LOOPCTL_HOME/deploy/docker-compose.yml" "$@"
}

docker() { "$DOCKER" "$@"; }

# --- the deploy lock: one change to the stack at a time -------------------------------

# take_lock WHAT COMMIT: refuse at once, naming the holder, if another change runs.
# The kernel drops a flock when the process dies, so even `kill -9` frees it.
take_lock() {
  mkdir -p "$LOOP_STATE_DIR"
  exec 9>>"$LOCK"
  if ! flock -n 9; then
    die "refused: $(cat "$LOCK.info" 2>/dev/null || echo 'another deploy is running')" 75
  fi
  printf '%s by %s since %s (commit %s, pid %s)\n' "$1" "${PERFORMER:-unknown}" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$2" "$$" >"$LOCK.info"
}

release_lock() {
  rm -f "$LOCK.info"
  exec 9>&-
}

# --- the app checkout -------------------------------------------------------------------

# The checkout belongs to the SSH user; root reads it, so git's ownership check is waived
# for exactly this directory.
head_commit() {
  git -c safe.directory="$LOOP_APP_DIR" -C "$LOOP_APP_DIR" rev-parse --short=12 HEAD 2>/dev/null ||
    die "$LOOP_APP_DIR is not a git checkout: run 'inv local-sync'" 64
}

# --- colors and containers ---------------------------------------------------------------

container() { printf 'loop-api-%s' "$1"; }
other_color() { if [[ $1 == blue ]]; then echo green; else echo blue; fi; }

live_color() {
  [[ -r $UPSTREAM ]] || return 0
  sed -nE '/^[[:space:]]*default loop-api-(blue|green):/{s/.*loop-api-(blue|green):.*/\1/p;q;}' "$UPSTREAM"
}

# The commit a color's container runs, from its image tag ("" when there is no container).
color_commit() {
  local image
  image=$(docker inspect -f '{{.Config.Image}}' "$(container "$1")" 2>/dev/null) || return 0
  echo "${image##*:}"
}

is_running() { [[ $(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]; }

# color_compose COLOR TAG ARGS...: compose with that color's image tag (BLUE_TAG / GREEN_TAG).
color_compose() {
  local var
  var=$(tr '[:lower:]' '[:upper:]' <<<"$1")_TAG
  (
    export "$var=$2" GIT_COMMIT="$2"
    compose "${@:3}"
  )
}

build_color() { color_compose "$1" "$2" build "api-$1"; }

# Recreate one color from an image tag that already exists.
start_color() { color_compose "$1" "$2" up -d --no-deps --no-build --force-recreate "api-$1"; }

# wait_healthy CONTAINER TIMEOUT: poll Docker's health status every second.
wait_healthy() {
  local name=$1 deadline=$((SECONDS + $2)) status last=""
  while :; do
    status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$name" 2>/dev/null || echo missing)
    if [[ $status != "$last" ]]; then
      printf '    %s: %s\n' "$name" "$status"
      last=$status
    fi
    case $status in
      healthy) return 0 ;;
      unhealthy | exited | dead | missing) return 1 ;;
    esac
    ((SECONDS < deadline)) || {
      printf '    %s: not healthy after %ss\n' "$name" "$2"
      return 1
    }
    sleep 1
  done
}

show_logs() {
  warn "last log lines of $1:"
  docker logs --tail 30 "$1" 2>&1 | sed 's/^/    /' >&2 || true
}

# --- nginx: the switch ---------------------------------------------------------------------

write_upstream() {
  cat <<EOF
# Live color, written by loopctl at $(date -u +%Y-%m-%dT%H:%M:%SZ): $1 (commit $2).
# Do not edit: every deploy and rollback replaces this file.
map \$host \$loop_upstream {
    default loop-api-$1:8081;
}
map \$host \$loop_color {
    default $1;
}
EOF
}

# nginx -t on the running proxy, with the candidate upstream in place of the live one.
nginx_test_candidate() {
  docker exec "$PROXY" sh -c \
    'sed "s#/etc/loop-live/upstream.conf#/etc/loop-live/$1#" /etc/loop-nginx/nginx.conf >/tmp/loop-nginx-test.conf &&
     nginx -t -q -c /tmp/loop-nginx-test.conf' sh "$(basename "$1")"
}

# write_candidate COLOR COMMIT: the upstream for COLOR, beside the live one (same folder, so
# renaming it into place is atomic). Prints its path.
write_candidate() {
  local candidate=$UPSTREAM.next
  mkdir -p "$(dirname "$UPSTREAM")"
  write_upstream "$1" "$2" >"$candidate"
  chmod 644 "$candidate"
  echo "$candidate"
}

# switch_to COLOR COMMIT: write to a temp file, test it, rename into place, reload.
switch_to() {
  local candidate
  candidate=$(write_candidate "$1" "$2")
  if is_running "$PROXY"; then
    if ! nginx_test_candidate "$candidate"; then
      rm -f "$candidate"
      warn "nginx -t failed: no switch"
      return 1
    fi
    mv -f "$candidate" "$UPSTREAM"
    docker kill --signal HUP "$PROXY" >/dev/null
  else
    mv -f "$candidate" "$UPSTREAM"
    compose up -d --no-deps proxy
  fi
}

# verify_through_proxy COLOR SECONDS: for the window, every request through the proxy (four a
# second) must be a 200 from COLOR. The reload is asynchronous, so the old color may answer
# for a moment first; after 10 s that counts as a failed switch.
verify_through_proxy() {
  local color=$1 window=$(($2 * 1000)) start seen=0 code served waited
  local url="http://${PROXY_HOST:-127.0.0.1}:$PROXY_PORT/health"
  start=$(ms_now)
  while :; do
    read -r code served < <(curl -sS -m 3 -o /dev/null -D - "$url" 2>/dev/null |
      awk 'NR == 1 { code = $2 } tolower($1) == "x-loop-color:" { c = $2 } END { gsub(/\r/, "", c); print (code ? code : 0), c }')
    waited=$(($(ms_now) - start))
    if [[ $code != 200 ]]; then
      warn "proxy answered $code for $url"
      return 1
    elif [[ $served == "$color" ]]; then
      seen=1
    elif ((seen)); then
      warn "traffic went back to '$served'"
      return 1
    elif ((waited >= 10000)); then
      warn "traffic still reaches '$served' 10s after the reload"
      return 1
    fi
    ((seen && waited >= window)) && return 0
    sleep 0.25
  done
}

# --- undo ------------------------------------------------------------------------------------

# State of a deploy or rollback in progress, read by finish_change; the T_ stamps by the
# scripts' summaries.
# shellcheck disable=SC2034  # set and read by the scripts that source this file
live="" target="" switched=0 committed=0 brought_up="" T_SWITCHED=0 T_VERIFIED=0

# EXIT trap of deploy and rollback: a change that did not commit is undone so the live color
# keeps serving. Traffic goes back to it; the container brought up is removed if the change
# created it, or stopped again if it only started an existing one (a kept release).
finish_change() {
  local status=$?
  trap - EXIT
  if ((!committed)); then
    if ((switched)) && [[ -n $live ]]; then
      warn "switching back to $live"
      switch_to "$live" "$(color_commit "$live")" || warn "could not switch back to $live: check 'inv status'"
    fi
    if [[ -n $brought_up ]]; then
      show_logs "$(container "$target")"
      if [[ $brought_up == created ]]; then
        warn "removing $(container "$target")"
        docker rm -f "$(container "$target")" >/dev/null 2>&1 || true
      else
        warn "stopping $(container "$target") again"
        docker stop -t 10 "$(container "$target")" >/dev/null 2>&1 || true
      fi
    fi
    if [[ -n $live && ( -n $brought_up || $switched == 1 ) ]]; then
      warn "undone: $live (commit $(color_commit "$live")) is still serving"
    fi
  fi
  release_lock
  exit "$status"
}

# switch_and_verify COMMIT: the common end of deploy and rollback, from a healthy target on.
switch_and_verify() {
  step "switching nginx to $target"
  switched=1
  switch_to "$target" "$1" || die "nginx did not accept the new upstream"
  # shellcheck disable=SC2034  # read by the calling script's summary
  T_SWITCHED=$(ms_now)
  step "verifying through the proxy for ${VERIFY_SECONDS}s"
  verify_through_proxy "$target" "$VERIFY_SECONDS" || die "verification through the proxy failed"
  # shellcheck disable=SC2034  # read by the calling script's summary
  T_VERIFIED=$(ms_now)
  committed=1
  if [[ -n $live ]]; then
    step "stopping $(container "$live") (kept for rollback)"
    docker stop -t 10 "$(container "$live")" >/dev/null
  fi
}

# --- history ---------------------------------------------------------------------------------

# record_release KIND COMMIT COLOR: one tab-separated line per change of the live version.
record_release() {
  printf '%s\t%s\t%s\tloop-api:%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "$2" "$3" \
    "$(tr -d '\t\n' <<<"${PERFORMER:-unknown}")" >>"$RELEASES"
  chmod 644 "$RELEASES"
}

# Keep the images of the last KEEP_RELEASES released commits, and always the live and the
# previous color's; docker refuses to delete an image a container uses, which guards the rest.
prune_images() {
  local keep tag
  keep=$( (tac "$RELEASES" 2>/dev/null | awk -F'\t' -v n="${KEEP_RELEASES:-5}" '!seen[$3]++ && kept++ < n { print $3 }'
    color_commit blue
    color_commit green) | sort -u)
  for tag in $(docker image ls loop-api --format '{{.Tag}}'); do
    grep -qxF "$tag" <<<"$keep" || docker image rm "loop-api:$tag" >/dev/null 2>&1 || true
  done
  # Rebuilding a tag leaves the image it replaced untagged; only this stack's are pruned.
  docker image prune -f --filter dangling=true --filter label=org.loopctl.stack=loop >/dev/null 2>&1 || true
}

# parse_flags ARGS...: the flags every deploy script takes; sets EXTRA_FLAGS to the rest
# (as NAME=VALUE words) for the script's own. Bad usage exits 64.
parse_flags() {
  EXTRA_FLAGS=()
  while (($#)); do
    [[ $# -ge 2 && $1 == --* ]] || { usage >&2; exit 64; }
    case $1 in
      --performer) PERFORMER=$2 ;;
      --health-timeout) HEALTH_TIMEOUT=$2 ;;
      --verify-seconds) VERIFY_SECONDS=$2 ;;
      *) EXTRA_FLAGS+=("${1#--}=$2") ;;
    esac
    shift 2
  done
  [[ ${HEALTH_TIMEOUT:-0} =~ ^[0-9]+$ && ${VERIFY_SECONDS:-0} =~ ^[0-9]+$ ]] || { usage >&2; exit 64; }
}

# Signals end the script through its EXIT trap, so the undo logic runs for them too.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP
