#!/usr/bin/env bash
# Read-only facts about the NAS that only root can read, for `inv status`, `inv setup` and
# the checks before a change. Nothing here changes anything.
set -Eeuo pipefail

. "${BASH_SOURCE%/*}/lib.sh"
. "${BASH_SOURCE%/*}/lib-deploy.sh"
. "${BASH_SOURCE%/*}/lib-proxy.sh"

usage() {
  cat <<USAGE
usage: facts.sh status | preflight | lock | home | tools

  status                      everything \`inv status\` needs, as tab-separated lines (see status_fact)
  preflight                   what a change checks first (lock, home, tools), in status's lines
  lock                        exit 0 when no change runs, $EXIT_LOCKED (and who holds it) when one does
  home                        what makes the loopctl home unsafe for root, one line each (none: safe)
  tools                       the tools the NAS scripts need that this NAS lacks, one line each
  --help                      this text
USAGE
}

lock_fact() {
  [[ -e $LOCK ]] || return 0
  exec 9<"$LOCK"
  # A shared lock: a look never refuses a change that starts at the same moment.
  flock -n -s 9 && return 0
  cat "$LOCK_INFO" 2>/dev/null || echo "a change is running"
  exit "$EXIT_LOCKED"
}

home_fact() {
  unsafe_home
  [[ -n ${LOOK+set} ]] || look_at_containers
  rw_mounts_of_home
}

# Everything the scripts call, by the name they call it; DSM is not Debian.
tools_fact() {
  local tool
  for tool in ${NAS_TOOLS//,/ }; do
    command -v "$tool" >/dev/null || echo "$tool is missing"
  done
  [[ $(date +%N 2>/dev/null) =~ ^[0-9]{9}$ ]] || echo "date does not support %N (GNU date needed)"
  # The GNU options the scripts use, where busybox's tools lack them.
  timeout --kill-after=1 5 sleep 0 2>/dev/null || echo "timeout does not support --kill-after (GNU coreutils needed)"
  dd if=/dev/null of=/dev/null iflag=nofollow,nonblock,fullblock status=none 2>/dev/null ||
    echo "dd does not support iflag=nofollow,nonblock,fullblock (GNU coreutils needed)"
  [[ $(realpath -m /loopctl-probe/x 2>/dev/null) == /loopctl-probe/x && $(realpath -e / 2>/dev/null) == / ]] ||
    echo "realpath does not support -e and -m (GNU coreutils needed)"
  ((BASH_VERSINFO[0] >= 4)) || echo "bash is older than 4"
  # pick_compose runs the Compose it chooses, and reads its version.
  if ! ((${#COMPOSE[@]})) && ! pick_compose; then
    echo "$STACK_PROBLEM"
  elif [[ ${COMPOSE_MAJOR:-} == 1 ]] && ! version_at_least "${COMPOSE_FOUND:-0}" "$COMPOSE_V1_MIN"; then
    echo "Compose ${COMPOSE_FOUND:-?} (${COMPOSE[*]}) is older than $COMPOSE_V1_MIN, the oldest v1 loopctl works with (--env-file, config --no-interpolate): install Compose v2 (Container Manager)"
  fi
}

# open_connections PID PORT: TCP connections established to PORT from outside the network
# namespace of the process PID (a container's; its own healthcheck's loopback ones left out):
# the proxy's open requests there, MCP streams for the most part (root reads any namespace).
open_connections() {
  local hex
  [[ $1 =~ ^[1-9][0-9]*$ && $2 =~ ^[0-9]+$ ]] || { echo 0; return; }
  hex=$(printf ':%04X' "$2")
  cat "/proc/$1/net/tcp" "/proc/$1/net/tcp6" 2>/dev/null |
    awk -v port="$hex" '$4 == "01" && substr($2, length($2) - 4) == port &&
      $3 !~ /^(0100007F|0000000000000000FFFF00000100007F|00000000000000000000000001000000):/ { n++ }
      END { print n + 0 }'
}

# status: everything `inv status` needs from root, in one call, as tab-separated lines
#   live COLOR | standby COLOR | app NAME (the app's own api container) | upstream ok|missing|garbled
#   lock free|held INFO
#   journal KEY=VALUE... | oauth volume=NAME from=FOLDER at=TIME | home PROBLEM | tool PROBLEM
#   container NAME STATE HEALTH IMAGE STARTED SERVICE | connections NAME COUNT
# start_tools: tools_fact from here on, beside what follows (it runs Compose for its version,
# the slowest part of a look); tool_lines prints what it found.
start_tools() { exec 8< <(tools_fact); }
tool_lines() {
  local line
  while IFS= read -r line; do printf 'tool\t%s\n' "$line"; done <&8
  exec 8<&-
}

# lock_and_home_lines: who holds the lock, and what makes the home unsafe for root.
lock_and_home_lines() {
  local holder line
  if holder=$(lock_fact); then echo $'lock\tfree'; else printf 'lock\theld\t%s\n' "$(head -n 1 <<<"$holder")"; fi
  [[ $1 == stack ]] || return 0
  while IFS= read -r line; do printf 'home\t%s\n' "$line"; done < <(home_fact)
}

# The stack's containers from one look: the two colors, the proxy and those of the stack's
# Compose project (named after the first of them that carries the label, as stack_project).
# The app's own container and the project are read from that look, by the labels
# app_container and stack_project filter on, rather than by asking Docker again each time.
status_fact() {
  local color upstream=missing app="" app_state="" stack=0 name pid image
  if read_stack_env; then
    stack=1
    start_tools
    look_at_containers
    read -r app app_state < <(awk -F'\t' -v service="\"$API_SERVICE\"" -v dir="\"$APP_DIR\"" \
      '$9 == service && $10 == dir { print substr($1, 2), $5; exit }' <<<"$LOOK") || true
  fi
  color=$(upstream_color)
  if [[ -r $UPSTREAM ]]; then
    upstream=ok
    [[ -n $color ]] || upstream=garbled
  fi
  [[ ! -e $APP_LIVE ]] || color=app
  # Before any deploy, the app's own compose container may be what serves.
  if [[ -z $color && $upstream == missing && $app_state == running ]]; then
    color=app
  fi
  printf 'live\t%s\nstandby\t%s\nupstream\t%s\n' "$color" "$(upstream_standby)" "$upstream"
  ((!stack)) || printf 'app\t%s\n' "$app"
  if [[ -s $JOURNAL ]]; then printf 'journal\t%s\n' "$(tr '\n' '\t' <"$JOURNAL")"; fi
  if [[ -s $LOOPCTL_HOME/$OAUTH_MOVED_FILE ]]; then printf 'oauth\t%s\n' "$(tr '\n' '\t' <"$LOOPCTL_HOME/$OAUTH_MOVED_FILE")"; fi
  if ((!stack)); then
    lock_and_home_lines none
    printf 'tool\t%s\n' "$STACK_PROBLEM"
    return 0
  fi
  lock_and_home_lines stack
  awk -F'\t' -v names="/$(container blue) /$(container green) /$PROXY_CONTAINER${app:+ /$app}" '
    BEGIN { n = split(names, order, " "); for (i = 1; i <= 3; i++) ours[order[i]] = 1 }
    { line[NR] = $0; name[NR] = $1; project[$1] = $8 }
    END {
      for (i = 1; i <= n && stack == ""; i++) if (project[order[i]] !~ /^("")?$/) stack = project[order[i]]
      for (i = 1; i <= NR; i++) {
        split(line[i], f, "\t")
        if (!(name[i] in ours) && (stack == "" || f[8] != stack)) continue
        gsub(/^"|"$/, "", f[9])
        printf "container\t%s\t%s\t%s\t%s\t%s\t%s\n", f[1], f[5], (f[4] == "none" ? "" : f[4]), f[2], f[6], f[9]
      } }' <<<"$LOOK"
  # The open connections of each running color, into its own container port.
  while read -r name pid image; do
    printf 'connections\t%s\t%s\n' "$name" "$(open_connections "$pid" "$(release_port "${image##*:}")")"
  done < <(awk -F'\t' -v blue="/$(container blue)" -v green="/$(container green)" \
    '($1 == blue || $1 == green) && $3 == "true" { print substr($1, 2), $7, $2 }' <<<"$LOOK")
  tool_lines
}

preflight_fact() {
  if read_stack_env; then
    start_tools
    lock_and_home_lines stack
    tool_lines
  else
    lock_and_home_lines none
    printf 'tool\t%s\n' "$STACK_PROBLEM"
  fi
}

main() {
  case ${1:-} in
    --help | -h) usage ;;
    status) status_fact ;;
    preflight) preflight_fact ;;
    lock) lock_fact ;;
    home) load_stack_env; home_fact ;;
    tools)
      # Compose and docker are found through stack.env; report their absence as a line too.
      if ! read_stack_env; then
        echo "$STACK_PROBLEM"
        DOCKER=/bin/true COMPOSE=(/bin/true)
      fi
      tools_fact
      ;;
    *) usage_error ;;
  esac
}

main "$@"
