# shellcheck shell=bash
# The base every NAS script sources: where things live, how to speak, the deploy lock, the
# journal of the change in progress, and the checks that make it safe to run as root.
# Sourced, never run, first: the other libraries (lib-deploy.sh, lib-proxy.sh, lib-mcp.sh,
# lib-oauth.sh, lib-change.sh) use it, and each script sources the ones it needs itself.
#
# Layout (installed by `inv setup`; names in contract.env, which Python reads too):
#   NAS_LOOPCTL_DIR/{scripts/,deploy/nginx/,stack.env,MANIFEST}
#   NAS_LOOPCTL_DIR/state/{nginx/upstream.conf,releases.tsv,audit.jsonl,journal,runs/,backups/,lock/}
#   NAS_LOOPCTL_DIR/releases/COMMIT/{stack.json,release.env}   (root only: holds the app's env)
#   NAS_LOOPCTL_DIR/{build/src,git}                               (root only: the export and its mirror)
# The home and every directory above it belong to root and only root writes them: whatever
# can write here can make root run it (install.sh refuses any other home).

# Everything written here is world-readable (status reads it as the SSH user) unless a
# function says otherwise (the lock, releases, backups, the build export).
umask 022
# The scripts' own PATH, never sudo's (DSM's secure_path lacks Container Manager's folder, and a
# caller's may hold anything); read_stack_env puts docker's folder in front.
readonly BASE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PATH=$BASE_PATH
export PATH
# Set by look_at_containers only, never by a caller's environment.
unset LOOK

# The home is where this file is installed. install.sh, which runs from the upload folder
# before anything is installed, names the home it installs into instead.
if [[ ${BASH_SOURCE[-1]##*/} == install.sh && -n ${LOOPCTL_INSTALL_HOME:-} ]]; then
  LOOPCTL_HOME=$LOOPCTL_INSTALL_HOME
else
  LOOPCTL_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
fi
readonly LOOPCTL_HOME
# shellcheck source=contract.env
. "${BASH_SOURCE[0]%/*}/contract.env"

# shellcheck disable=SC2034  # the paths every script may use; each uses some
readonly UPSTREAM=$LOOPCTL_HOME/$UPSTREAM_FILE
# shellcheck disable=SC2034
readonly RELEASES=$LOOPCTL_HOME/$RELEASES_FILE
readonly LOCK=$LOOPCTL_HOME/$LOCK_FILE
readonly LOCK_INFO=$LOOPCTL_HOME/$LOCK_INFO_FILE
readonly JOURNAL=$LOOPCTL_HOME/$JOURNAL_FILE
# shellcheck disable=SC2034
readonly APP_LIVE=$LOOPCTL_HOME/$APP_LIVE_FILE
# shellcheck disable=SC2034
readonly STATE=$LOOPCTL_HOME/$STATE_DIR
# shellcheck disable=SC2034
readonly BUILD=$LOOPCTL_HOME/$BUILD_DIR
# shellcheck disable=SC2034
readonly MIRROR=$LOOPCTL_HOME/$MIRROR_DIR

# The marked lines loopctl shows of a run (prefixes in contract.env); anything else a script or
# the tools it runs print is the run log's detail, shown on failure or with --verbose.
step() { printf '%s%s\n' "$STEP_PREFIX" "$*"; }
warn() { printf '%s%s\n' "$WARNING_PREFIX" "$*" >&2; }
die() {
  printf '%s%s\n' "$ERROR_PREFIX" "$1" >&2
  exit "${2:-$EXIT_FAILED}"
}
# summary FORMAT ARGS...: the run's KEY=VALUE fields for loopctl (printf's FORMAT), one line.
summary() {
  local format=$1
  shift
  # shellcheck disable=SC2059  # the format is the caller's literal, as printf's own
  printf "%s$format\n" "$SUMMARY_PREFIX" "$@"
}
ms_now() { date +%s%3N; }
# Seconds with one decimal from two millisecond stamps: `elapsed "$t0" "$t1"` -> 2.4s
elapsed() { printf '%d.%ds' $((($2 - $1) / 1000)) $(((($2 - $1) % 1000) / 100)); }
utc_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# One line of printable text: what others wrote (git config, a performer name, a container's
# output) goes into state files and terminals without control characters or tabs.
printable() { LC_ALL=C tr -d '\000-\037\177' <<<"$1" | LC_ALL=C tr -cd '\040-\176\200-\377' | head -c 200; }

# usage_and_exit: every script answers --help with its usage (on stdout, exit 0); bad usage
# prints it on stderr and exits 64.
usage_error() {
  usage >&2
  # Last, so that loopctl reads it as the reason (not the usage text's last line).
  die "${0##*/} was called with flags it does not take (a NAS copy older or newer than this loopctl?)" "$EXIT_USAGE"
}

# Settings written by `inv setup` (loopctl/bundle.py's stack_env writes exactly these).
readonly STACK_FIELDS=(DOCKER COMPOSE_VERSION APP_DIR APP_COMPOSE_FILE API_SERVICE KEEP_RELEASES KEEP_WARM)

# Settings written by `inv setup`: KEY=VALUE lines, read without sourcing (a file is data here).
load_stack_env() {
  read_stack_env || die "$STACK_PROBLEM" "$EXIT_USAGE"
}

# read_stack_env: load_stack_env that says why it cannot (STACK_PROBLEM, exit 1) instead of
# dying, for the facts that report it; loads once.
read_stack_env() {
  [[ -z ${STACK_LOADED:-} ]] || return "$STACK_LOADED"
  STACK_LOADED=1 STACK_PROBLEM=""
  if ! read_env_file "$LOOPCTL_HOME/$STACK_ENV_FILE" "${STACK_FIELDS[@]}"; then
    STACK_PROBLEM="$LOOPCTL_HOME/$STACK_ENV_FILE is missing or malformed: run 'inv setup'"
    return 1
  fi
  if [[ ! -x ${DOCKER:-} ]]; then
    STACK_PROBLEM="docker not found at '${DOCKER:-}' (NAS_DOCKER)"
    return 1
  fi
  # Compose calls the docker CLI itself (to build), and on Synology it is not on PATH. sudo's
  # secure_path is not relied upon either.
  PATH=$(dirname "$DOCKER"):$BASE_PATH
  # Build the way the app's own `compose up --build` does (v2: the engine's BuildKit; v1: the
  # classic builder), so an unchanged service gets the same image and is left running. No
  # colors or progress bars in logs; no warnings about orphans (the app's own containers are
  # this project's too).
  export COMPOSE_IGNORE_ORPHANS=true COMPOSE_ANSI=never COMPOSE_MENU=false BUILDKIT_PROGRESS=plain
  STACK_LOADED=0
}

# need_compose: COMPOSE picked (pick_compose) at its first use, not on every load: finding it
# runs Compose (0.1 s), and a rollback to the warm standby or `inv status` never needs it.
COMPOSE=()
need_compose() {
  ((${#COMPOSE[@]})) || pick_compose || die "$STACK_PROBLEM" "$EXIT_USAGE"
}

# read_env_file FILE NAMES...: assign NAME=VALUE lines for exactly the NAMES given; values are
# plain words (letters, digits and . _ / : @ , + -), anything else fails.
read_env_file() {
  local file=$1 line name value
  shift
  [[ -f $file && ! -L $file ]] || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -z $line || $line == '#'* ]] && continue
    [[ $line =~ ^([A-Z][A-Z0-9_]*)=([A-Za-z0-9_./:@,+-]*)$ ]] || return 1
    name=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    [[ " $* " == *" $name "* ]] || return 1
    printf -v "$name" '%s' "$value"
  done <"$file"
}

# COMPOSE: the Compose command, COMPOSE_MAJOR 1 or 2 and COMPOSE_FOUND its version. Synology
# ships Compose v2 as the docker CLI's plugin (`docker compose`) or, on some builds, as a
# standalone docker-compose beside docker; older DSM had v1's docker-compose. COMPOSE_VERSION
# (stack.env): auto takes the first that runs, in that order; v1 or v2 the first of that major.
# Exit 1 (STACK_PROBLEM) if none.
pick_compose() {
  local want=${COMPOSE_VERSION:-auto} where standalone on_path
  local -a compose_cmd
  standalone=$(dirname "$DOCKER")/docker-compose
  on_path=$(PATH=$BASE_PATH command -v docker-compose || true)
  for where in plugin standalone path; do
    case $where in
      plugin) compose_cmd=("$DOCKER" compose) ;;
      standalone) [[ -x $standalone ]] || continue; compose_cmd=("$standalone") ;;
      path) [[ -n $on_path && $on_path != "$standalone" ]] || continue; compose_cmd=("$on_path") ;;
    esac
    COMPOSE_FOUND=$("${compose_cmd[@]}" version --short 2>/dev/null) || continue
    COMPOSE_FOUND=${COMPOSE_FOUND#v}
    case $COMPOSE_FOUND in
      1.*) COMPOSE_MAJOR=1 ;;
      [2-9].*) COMPOSE_MAJOR=2 ;;
      *) continue ;;
    esac
    [[ $want == auto || $want == "v$COMPOSE_MAJOR" ]] || continue
    # shellcheck disable=SC2034  # read by the scripts
    COMPOSE=("${compose_cmd[@]}")
    return 0
  done
  case $want in
    auto) STACK_PROBLEM="neither '$DOCKER compose' nor docker-compose ($standalone, or on PATH) runs" ;;
    *) STACK_PROBLEM="no Compose $want found: not '$DOCKER compose', nor docker-compose at $standalone or on PATH (STACK_COMPOSE=$want)" ;;
  esac
  return 1
}

# version_at_least VERSION MINIMUM: dotted numbers compared field by field.
version_at_least() {
  local -a have want
  local i
  IFS=. read -ra have <<<"$1"
  IFS=. read -ra want <<<"$2"
  for ((i = 0; i < ${#want[@]}; i++)); do
    ((10#${have[i]:-0} > 10#${want[i]})) && return 0
    ((10#${have[i]:-0} < 10#${want[i]})) && return 1
  done
  return 0
}

docker() { "$DOCKER" "$@"; }

# --- reading the app checkout ---------------------------------------------------------------
# The app writes the checkout, .git included, and a FIFO in place of one of its files blocks
# any read of it forever. Root reads it only through mirror_git's fetch, under GNU timeout
# (CHECKOUT_FETCH_TIMEOUT), which ends its whole process group (git and the upload-pack it
# runs there), and never with the deploy lock's descriptor open: a reader stuck there must
# not hold the lock.

# checkout_timed_out STATUS: die, naming the checkout and the likely cause, when STATUS is
# timeout's (124, or 137 after --kill-after); any other STATUS is left to the caller's checks.
checkout_timed_out() {
  (($1 != 124 && $1 != 137)) ||
    die "reading the app checkout $APP_DIR took longer than ${CHECKOUT_FETCH_TIMEOUT}s and was stopped: something in its .git blocks reads (a FIFO? find $APP_DIR/.git -type p)"
}

# --- the deploy lock: one change to the stack at a time -------------------------------

# take_lock WHAT COMMIT: refuse at once, naming the holder, if another change runs.
# The kernel drops a flock when the process dies, so even `kill -9` frees it. The lock file
# sits in a directory only root can enter: anyone able to open it could hold it forever.
take_lock() {
  install -d -m 0700 "$LOOPCTL_HOME/$LOCK_DIR"
  exec 9>>"$LOCK"
  # Up to two seconds: `facts.sh lock` holds it for an instant when it looks.
  if ! flock -w 2 9; then
    die "refused: $(cat "$LOCK_INFO" 2>/dev/null || echo 'another deploy is running')" "$EXIT_LOCKED"
  fi
  # A change that held it until a moment ago may have changed containers since the last look
  # (taken before the lock, for the home check): what is decided under the lock is seen again.
  [[ -z ${LOOK+set} ]] || look_at_containers
  printf '%s by %s since %s (commit %s, pid %s)\n' "$1" "$(printable "${PERFORMER:-unknown}")" \
    "$(utc_now)" "$2" "$$" >"$LOCK_INFO.new"
  mv -f "$LOCK_INFO.new" "$LOCK_INFO"
}

release_lock() {
  rm -f "$LOCK_INFO"
  exec 9>&-
}

# --- the journal: the step of a change in progress, on disk ------------------------------
# An EXIT trap does not run on SIGKILL, OOM or power loss: the journal is what is left on disk
# of the step that was under way (`inv status` shows it).

# journal KEY=VALUE...: replace the journal with these fields (one per line), atomically.
journal() {
  printf '%s\n' "$@" >"$JOURNAL.new"
  mv -f "$JOURNAL.new" "$JOURNAL"
}

# journal_set KEY VALUE: change one field.
journal_set() {
  { grep -v "^$1=" "$JOURNAL" 2>/dev/null || true; printf '%s=%s\n' "$1" "$2"; } >"$JOURNAL.new"
  mv -f "$JOURNAL.new" "$JOURNAL"
}

journal_clear() { rm -f "$JOURNAL" "$JOURNAL.new"; }

# --- root's files must be root's alone ---------------------------------------------------

# unsafe_path PATH: prints why PATH (and every directory above it) is not safe to be run by
# root, or nothing. Safe: no symbolic links, owned by root, writable by nobody else.
unsafe_path() {
  local path=$1 part="" rest owner mode
  [[ $path == /* ]] || { echo "$path is not an absolute path"; return; }
  rest=${path#/}
  for part in / $(tr '/' ' ' <<<"$rest"); do
    if [[ $part == / ]]; then path=/; else path=${path%/}/$part; fi
    [[ -e $path || -L $path ]] || return 0
    if [[ -L $path ]]; then
      echo "$path is a symbolic link"
      return
    fi
    read -r owner mode < <(stat -c '%u %a' "$path")
    if [[ $owner != 0 ]]; then
      echo "$path belongs to uid $owner, not root"
      return
    fi
    # Group or others may write (sticky directories such as /tmp included: others can
    # still create entries there).
    if (((8#$mode & 8#022) != 0)); then
      echo "$path is writable by group or others (mode $mode)"
      return
    fi
  done
}

# unsafe_home: the home, its parents and everything in it (backups and the build export
# included) checked; prints the first problem.
unsafe_home() {
  local why found
  why=$(unsafe_path "$LOOPCTL_HOME")
  [[ -z $why ]] || { echo "$why"; return; }
  # The export and the mirror hold the app's files, links included: only their folders are
  # checked (root's, mode 700: nothing in them runs as root).
  found=$(find "$LOOPCTL_HOME" \( -path "$BUILD" -o -path "$MIRROR" \) -prune -o \
    \( -type l -o ! -user 0 -o -perm /022 \) -print -quit 2>/dev/null)
  [[ -z $found ]] || { echo "$found is a link, not root's, or writable by others"; return; }
  for found in "$BUILD" "$MIRROR"; do
    [[ ! -e $found || ($(stat -c '%u %a' "$found") == "0 700" && ! -L $found) ]] || echo "$found is not root's alone (mode 700)"
  done
}

# look_at_containers: every container as Docker sees it now, from one inspect (a rollback
# decides from it before its switch, status reads everything from it: each docker call costs
# ~15 ms). LOOK, a line each, tab-separated:
#   1 /NAME  2 IMAGE  3 RUNNING  4 HEALTH (none without a healthcheck)  5 STATUS  6 STARTED
#   7 PID  8 PROJECT  9 SERVICE  10 WORKING_DIR (the Compose labels)  11... "SOURCE"\037RW a mount
# Labels and mount sources are JSON strings (any container may carry a tab or a newline in
# them; JSON escapes both). What changes a container reads Docker again.
look_at_containers() {
  local ids
  for _ in 1 2; do
    ids=$(docker ps -aq)
    LOOK=""
    [[ -n $ids ]] || return 0
    # shellcheck disable=SC2086  # one id per word
    LOOK=$(docker inspect --format '{{.Name}}{{"\t"}}{{.Config.Image}}{{"\t"}}{{.State.Running}}{{"\t"}}{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}{{"\t"}}{{.State.Status}}{{"\t"}}{{.State.StartedAt}}{{"\t"}}{{.State.Pid}}{{"\t"}}{{json (index .Config.Labels "com.docker.compose.project")}}{{"\t"}}{{json (index .Config.Labels "com.docker.compose.service")}}{{"\t"}}{{json (index .Config.Labels "com.docker.compose.project.working_dir")}}{{range .Mounts}}{{"\t"}}{{json .Source}}{{"\x1f"}}{{.RW}}{{end}}' $ids 2>/dev/null) && return 0
    # A container went away between the two calls (a deploy recreates them): look again.
  done
  die "docker inspect of the containers failed twice (is Docker running?)"
}

# seen NAME image|running|health: that of container NAME in LOOK ("" when it has none).
seen() {
  awk -F'\t' -v name="/$1" -v field="$2" '$1 == name { print $(field == "image" ? 2 : field == "running" ? 3 : 4); exit }' <<<"$LOOK"
}

# Containers that mount the home, a directory above it or one inside it read-write can
# write what root runs. (Read-only mounts inside it are fine: the proxy reads its config.)
# From LOOK: look_at_containers first.
rw_mounts_of_home() {
  [[ -n $LOOK ]] || return 0
  awk -F'\t' -v home="$LOOPCTL_HOME" '
      { for (i = 11; i <= NF; i++) {
          split($i, m, "\037"); src = substr(m[1], 2, length(m[1]) - 2); rw = m[2]
          if (rw != "true") continue
          if (src == home || index(home "/", src "/") == 1 || index(src, home "/") == 1 || src == "/")
            printf "%s mounts %s read-write\n", substr($1, 2), src
        } }' <<<"$LOOK"
}
