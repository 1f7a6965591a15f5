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

# tools_fact [compose]: everything the scripts call, by the name they call it (DSM is not
# Debian); with "compose" also the Compose a change would pick, run for its version. That
# starts the docker CLI and its plugin twice (0.1 s, more than the rest of a status), so
# `inv status` leaves it to `inv setup` and each change's preflight, which refuse without it.
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
  [[ ${1:-} == compose ]] || return 0
  # pick_compose runs the Compose it chooses, and reads its version.
  if ! ((${#COMPOSE[@]})) && ! pick_compose; then
    echo "$STACK_PROBLEM"
  elif [[ ${COMPOSE_MAJOR:-} == 1 ]] && ! version_at_least "${COMPOSE_FOUND:-0}" "$COMPOSE_V1_MIN"; then
    echo "Compose ${COMPOSE_FOUND:-?} (${COMPOSE[*]}) is older than $COMPOSE_V1_MIN, the oldest v1 loopctl works with (--env-file, config --no-interpolate): install Compose v2 (Container Manager)"
  fi
}

# connection_lines: `connections NAME COUNT` for each running color: the TCP connections
# established to its container port from outside its network namespace (its own healthcheck's
# loopback ones left out), the proxy's open requests there, MCP streams for the most part
# (root reads any namespace). One awk over every color's /proc tables (a file tells its pid),
# each port its release's (release_port of the image's commit).
connection_lines() {
  local name pid image port files=() colors=""
  while read -r name pid image; do
    port=$(release_port "${image##*:}")
    [[ ! $port =~ ^[0-9]{1,5}$ ]] || printf -v port ':%04X' "$port"
    if [[ $pid =~ ^[1-9][0-9]*$ && $port == :* && -r /proc/$pid/net/tcp ]]; then
      # Without IPv6 there is no tcp6 table (and mawk stops at a file it cannot open).
      files+=("/proc/$pid/net/tcp")
      [[ ! -r /proc/$pid/net/tcp6 ]] || files+=("/proc/$pid/net/tcp6")
      colors+=" $pid=$name=$port"
    else
      printf 'connections\t%s\t0\n' "$name"
    fi
  done < <(awk -F'\t' -v blue="/$(container blue)" -v green="/$(container green)" \
    '($1 == blue || $1 == green) && $3 == "true" { print substr($1, 2), $7, $2 }' <<<"$LOOK")
  ((${#files[@]})) || return 0
  awk -v colors="$colors" '
    BEGIN { n = split(colors, c, " "); for (i = 1; i <= n; i++) { split(c[i], f, "="); pid[i] = f[1]; name[f[1]] = f[2]; port[f[1]] = f[3] } }
    { split(FILENAME, path, "/"); p = path[3] }
    $4 == "01" && substr($2, length($2) - 4) == port[p] &&
      $3 !~ /^(0100007F|0000000000000000FFFF00000100007F|00000000000000000000000001000000):/ { count[p]++ }
    END { for (i = 1; i <= n; i++) printf "connections\t%s\t%d\n", name[pid[i]], count[pid[i]] }' "${files[@]}" 2>/dev/null || true
}

# status: everything `inv status` needs from root, in one call, as tab-separated lines
#   live COLOR | standby COLOR | app NAME (the app's own api container) | upstream ok|missing|garbled
#   lock free|held INFO
#   journal KEY=VALUE... | oauth volume=NAME from=FOLDER at=TIME | home PROBLEM | tool PROBLEM
#   container NAME STATE HEALTH IMAGE STARTED SERVICE | connections NAME COUNT
# start_tools [compose]: tools_fact from here on, beside what follows; tool_lines prints what
# it found.
start_tools() { exec 8< <(tools_fact "$@"); }
tool_lines() {
  local line
  while IFS= read -r line; do printf 'tool\t%s\n' "$line"; done <&8
  exec 8<&-
}

# start_home: unsafe_home (a walk of the home) from here on, beside the look at the
# containers that rw_mounts_of_home then reads.
start_home() { exec 7< <(unsafe_home); }

# lock_and_home_lines stack|none: who holds the lock, and (stack) what makes the home unsafe
# for root: what start_home found, then the containers that mount it read-write.
lock_and_home_lines() {
  local holder line
  if holder=$(lock_fact); then echo $'lock\tfree'; else printf 'lock\theld\t%s\n' "$(head -n 1 <<<"$holder")"; fi
  [[ $1 == stack ]] || return 0
  [[ -n ${LOOK+set} ]] || look_at_containers
  while IFS= read -r line; do printf 'home\t%s\n' "$line"; done < <(cat <&7; rw_mounts_of_home)
  exec 7<&-
}

# The stack's containers from one look: the two colors, the proxy and those of the stack's
# Compose project (named after the first of them that carries the label), the app's own
# container among them (look_app_container, as the change scripts find it).
status_fact() {
  local color upstream=missing app="" app_running=0 stack=0
  if read_stack_env; then
    stack=1
    start_tools
    start_home
    look_at_containers
    # Reading a container's /proc TCP tables takes the kernel ~15 ms each: beside the rest.
    exec 6< <(connection_lines)
    app=$(look_app_container any)
    [[ -z $(look_app_container running) ]] || app_running=1
  fi
  color=$(upstream_color)
  if [[ -r $UPSTREAM ]]; then
    upstream=ok
    [[ -n $color ]] || upstream=garbled
  fi
  [[ ! -e $APP_LIVE ]] || color=app
  # Before any deploy, the app's own compose container may be what serves.
  if [[ -z $color && $upstream == missing ]] && ((app_running)); then
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
  cat <&6
  exec 6<&-
  tool_lines
}

preflight_fact() {
  if read_stack_env; then
    start_tools compose
    start_home
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
      tools_fact compose
      ;;
    *) usage_error ;;
  esac
}

main "$@"
