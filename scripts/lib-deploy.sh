# shellcheck shell=bash
# What the scripts know about the stack: releases and their stack definitions, the app
# checkout's export and its build, colors and containers, health waits and the release
# history. The nginx switch is lib-proxy.sh's, the transaction of a change lib-change.sh's.
# Needs lib.sh, which the scripts source first. Sourced, never run.
#
# A release is releases/SHORT/{stack.json,release.env}: the app's own compose definition
# of the api service, copied into one service per color (only the names and the published
# ports differ), its other services as the app defines them, and the proxy. It is written
# by loopctl from `compose config` of the commit, so a rollback starts an old release
# exactly as it was defined.

# OAUTH_VOLUME and OAUTH_FROM: the named volume the OAuth state lives in, and the app's folder
# it moves from (lib-oauth.sh).
# migration, removed after loopctl 1.0: OAUTH_DIR, that folder mounted as it is by
# releases an older loopctl defined (read so they can be named; refuse_stale_layout).
readonly RELEASE_FIELDS=(COMMIT SHORT PROJECT API_SERVICE API_REPO CONTAINER_PORT PROXY_BIND PROXY_PORT PROXY_IMAGE
  HEALTH_PATH PUBLIC_HOST AUX_SERVICES BUILD_SERVICES OAUTH_VOLUME OAUTH_FROM OAUTH_DIR NETWORKS VOLUMES BIND_SOURCES)

release_dir() { printf '%s/%s/%s' "$LOOPCTL_HOME" "$RELEASES_DIR" "$1"; }

# load_release SHORT: that release's fields (release.env) into the environment.
# shellcheck disable=SC2153  # the fields are assigned by read_env_file
load_release() {
  local dir
  dir=$(release_dir "$1")
  # The fields a release may lack: none left over from the release loaded before.
  # shellcheck disable=SC2034  # release fields, read by lib-oauth.sh and the scripts
  OAUTH_VOLUME="" OAUTH_FROM="" OAUTH_DIR=""
  read_env_file "$dir/$RELEASE_ENV_FILE" "${RELEASE_FIELDS[@]}" ||
    die "release $1 has no valid definition in $dir (deploy it again)" "$EXIT_NOTHING_TO_ROLL_BACK"
  [[ $SHORT == "$1" && -f $dir/$RELEASE_STACK_FILE ]] || die "release $1 in $dir is incomplete" "$EXIT_NOTHING_TO_ROLL_BACK"
}

# install_release FROM SHORT: copy the definition the workstation uploaded (FROM holds
# stack.json and release.env) into releases/SHORT, readable by root only: the app's
# environment, secrets included, is in it.
install_release() {
  local from=$1 short=$2 dir file
  dir=$(release_dir "$short")
  for file in "$RELEASE_STACK_FILE" "$RELEASE_ENV_FILE"; do
    [[ -f $from/$file && ! -L $from/$file ]] || die "$from/$file is missing or not a plain file" "$EXIT_USAGE"
    (($(stat -c %s "$from/$file") < 1048576)) || die "$from/$file is too large" "$EXIT_USAGE"
  done
  install -d -m 0700 "$LOOPCTL_HOME/$RELEASES_DIR"
  rm -rf "$dir.new"
  install -d -m 0700 "$dir.new"
  if ! install -m 0600 "$from/$RELEASE_STACK_FILE" "$from/$RELEASE_ENV_FILE" "$dir.new/" 2>/dev/null; then
    rm -rf "$dir.new"
    disk_full_or_die "could not copy the release definition into $dir" "$dir.new"
  fi
  rm -rf "$dir.old"
  [[ ! -e $dir ]] || mv "$dir" "$dir.old"
  mv "$dir.new" "$dir"
  rm -rf "$dir.old"
}

# compose_release SHORT ARGS...: Compose on that release's definition. Run from the release
# folder: Compose would read a .env from the working directory, and there is none there.
# COMPOSE_PREFIX (a caller's local array) runs it under a command such as `timeout`.
compose_release() {
  local dir
  dir=$(release_dir "$1")
  shift
  [[ ${1:-} != up ]] || check_release_bind_sources
  need_compose
  (cd "$dir" && ${COMPOSE_PREFIX[@]+"${COMPOSE_PREFIX[@]}"} "${COMPOSE[@]}" -p "$PROJECT" --project-directory "$dir" \
    -f "$dir/$RELEASE_STACK_FILE" "$@" 2> >(without_compose_noise >&2))
}

# Compose v2's warnings about its own build machinery, on every build whichever way it is set
# (COMPOSE_BAKE=false "is deprecated"; unset, "buildx isn't installed"): not the user's concern.
without_compose_noise() {
  grep -Ev --line-buffered 'COMPOSE_BAKE=false is deprecated|configured to build using Bake, but buildx|the attribute .version. is obsolete' || true
}

# --- the app checkout, exported and built --------------------------------------------------

# Root never runs git inside the checkout: the app writes there (hooks, config, fsmonitor
# would run as root). Fetching from it into loopctl's own mirror is what git itself calls the
# safe way to read an untrusted repository.
# mirror_git [--from-checkout] ARGS...: git on loopctl's mirror, never with the deploy lock's
# descriptor (fd 9) open. --from-checkout: it reads the checkout (the fetch from it), so it is
# stopped after CHECKOUT_FETCH_TIMEOUT (see checkout_timed_out in lib.sh).
mirror_git() {
  local -a bound=()
  if [[ ${1:-} == --from-checkout ]]; then
    bound=(timeout --kill-after=5 "$CHECKOUT_FETCH_TIMEOUT")
    shift
  fi
  ${bound[@]+"${bound[@]}"} git -c core.hooksPath=/dev/null -c protocol.file.allow=always -c safe.directory='*' \
    -c core.fsmonitor=false --git-dir="$MIRROR" "$@" 9>&-
}

# export_dir: where export_commit puts the commit's files, in a folder named as the checkout
# is, so Compose gives the project the name it has in the checkout.
export_dir() { printf '%s/%s/%s' "$LOOPCTL_HOME" "$EXPORT_DIR" "$(basename "$APP_DIR")"; }

# export_commit COMMIT: the export holds exactly the tracked files of COMMIT (nothing the app
# changed or added in the checkout), the build context of every service the app builds.
export_commit() {
  local commit=$1 src
  src=$(export_dir)
  [[ $commit =~ ^[0-9a-f]{40}$ ]] || die "not a full commit id: '$commit'" "$EXIT_USAGE"
  if [[ -d $src && $(cat "$BUILD/commit" 2>/dev/null) == "$commit" ]]; then
    return 0
  fi
  install -d -m 0700 "$BUILD"
  [[ -d $MIRROR ]] || git init -q --bare "$MIRROR"
  chmod 0700 "$MIRROR"
  # git clears its -c settings for the upload-pack it runs in the checkout (a local transport):
  # that one gets its own, or it refuses a repository root does not own (as the SSH user's is).
  mirror_git --from-checkout fetch --quiet --no-tags --no-write-fetch-head \
    --upload-pack="git -c safe.directory='*' -c core.hooksPath=/dev/null upload-pack" "file://$APP_DIR" \
    "+refs/heads/*:refs/checkout/heads/*" "+HEAD:refs/checkout/HEAD" 2>&1 | sed 's/^/    /' >&2 || checkout_timed_out "$?"
  mirror_git cat-file -e "$commit^{commit}" 2>/dev/null ||
    die "commit $commit is not on a branch of $APP_DIR: run 'inv local-sync'" "$EXIT_USAGE"
  rm -f "$BUILD/commit"
  install -d -m 0700 "$(dirname "$src")"
  # migration, removed after loopctl 1.0: nothing else beside it (an older loopctl exported
  # into the parent itself).
  find "$(dirname "$src")" -mindepth 1 -maxdepth 1 ! -name "$(basename "$src")" -exec rm -rf {} +
  mkdir -m 0700 "$src.new"
  if ! mirror_git -c tar.umask=0022 archive --format=tar "$commit" | tar -x --no-same-owner -C "$src.new" 2>"$BUILD/tar.err"; then
    rm -rf "$src.new"
    disk_full_or_die "exporting $commit failed: $(tail -n 1 "$BUILD/tar.err")" "$BUILD"
  fi
  rm -rf "$src"
  mv "$src.new" "$src"
  echo "$commit" >"$BUILD/commit"
}

# build SHORT SERVICES...: within BUILD_TIMEOUT; a full disk is said so.
build() {
  local short=$1 rc
  shift
  local -a COMPOSE_PREFIX=(timeout --kill-after=10 "$BUILD_TIMEOUT")
  set +e
  compose_release "$short" build "$@" 2>&1 | tee "$BUILD/build.log"
  rc=${PIPESTATUS[0]}
  set -e
  ((rc == 0)) && return 0
  ((rc != 124 && rc != 137)) || die "the build took longer than ${BUILD_TIMEOUT}s (DEPLOY_BUILD_TIMEOUT): stopped"
  if grep -qi 'no space left on device' "$BUILD/build.log"; then disk_full_or_die "no space left on device while building"; fi
  die "the build failed (exit $rc)"
}

# disk_full_or_die MESSAGE [PATH]: say plainly when the disk holding PATH (default: the home)
# is full (exit 74), else die.
disk_full_or_die() {
  local avail where=${2:-$LOOPCTL_HOME}
  [[ -e $where ]] || where=$(dirname "$where")
  avail=$(df -Pk "$where" 2>/dev/null | awk 'NR == 2 { print $4 }')
  if [[ $1 == *"No space left"* || ${avail:-1} -lt 1024 ]]; then
    die "the disk is full ($(df -Ph "$where" | awk 'NR == 2 { print $4 }') free on $(df -P "$where" | awk 'NR == 2 { print $6 }')): $1" "$EXIT_DISK_FULL"
  fi
  die "$1"
}

# --- colors and containers ---------------------------------------------------------------

container() { printf '%s-%s' "$API_SERVICE" "$1"; }
other_color() { if [[ $1 == blue ]]; then echo green; else echo blue; fi; }

# release_port SHORT: the container port that release's api listens on ("" if unknown).
release_port() {
  sed -n 's/^CONTAINER_PORT=\([0-9][0-9]*\)$/\1/p' "$(release_dir "$1")/$RELEASE_ENV_FILE" 2>/dev/null || true
}

# release_opening SHORT: how that release passed its MCP gate (mcp_tools' openings), "" when
# that is not recorded.
release_opening() {
  grep -xE -m 1 'modern|handshake|sse' "$(release_dir "$1")/$RELEASE_MCP_FILE" 2>/dev/null || true
}

# color_port COLOR: the container port of the release COLOR's container runs ("" if unknown).
color_port() { release_port "$(color_commit "$1")"; }

# The commit a color's container runs, from its image tag ("" when there is no container).
color_commit() {
  local image
  image=$(docker inspect -f '{{.Config.Image}}' "$(container "$1")" 2>/dev/null) || return 0
  echo "${image##*:}"
}

exists() { docker inspect -f '{{.Id}}' "$1" >/dev/null 2>&1; }

# container_ip NAME: its address on its first network, where this host reaches it directly.
container_ip() {
  docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" 2>/dev/null | awk '{ print $1 }'
}
is_running() { [[ $(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]; }

# check_bind_sources PATH...: Docker follows links in a bind mount's source when it starts a
# container, and the app can turn a folder of the checkout into a link to /. Before every start,
# each source must be its own canonical path.
check_bind_sources() {
  local source
  for source in "$@"; do
    [[ $(realpath -m -- "$source") == "$source" ]] ||
      die "the mount source $source goes through a symbolic link (to $(realpath -m -- "$source")): refused" "$EXIT_REFUSED"
  done
}

# check_release_bind_sources: check_bind_sources for the loaded release's BIND_SOURCES.
check_release_bind_sources() {
  local -a sources=()
  IFS=, read -ra sources <<<"${BIND_SOURCES:-}"
  check_bind_sources ${sources[@]+"${sources[@]}"}
}

# ensure_shared_objects: the networks and volumes the app's compose shares with this stack
# are declared external in it, so whichever Compose (or a hand) made them, with whatever
# labels, they are used as they are; missing ones are made here.
ensure_shared_objects() {
  local name
  for name in ${NETWORKS//,/ }; do
    docker network inspect "$name" >/dev/null 2>&1 ||
      docker network create --label "com.docker.compose.project=$PROJECT" "$name" >/dev/null
  done
  for name in ${VOLUMES//,/ }; do
    docker volume inspect "$name" >/dev/null 2>&1 ||
      docker volume create --label "com.docker.compose.project=$PROJECT" "$name" >/dev/null
  done
}

# wait_healthy CONTAINER TIMEOUT: poll Docker's view four times a second until healthy (or
# running, for a container without a healthcheck): a switch waits no longer than the health
# check itself. The one rule set: `inv restart` uses it too.
wait_healthy() {
  local name=$1 deadline=$((SECONDS + $2)) status last=""
  while :; do
    status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}/no-healthcheck{{end}}' "$name" 2>/dev/null || echo missing)
    if [[ $status != "$last" ]]; then
      printf '    %s: %s\n' "$name" "${status%/no-healthcheck}"
      last=$status
    fi
    case $status in
      healthy | running/no-healthcheck) return 0 ;;
      unhealthy | exited* | dead* | missing) return 1 ;;
    esac
    ((SECONDS < deadline)) || {
      printf '    %s: not healthy after %ss\n' "$name" "$2"
      return 1
    }
    sleep 0.25
  done
}

# show_failure NAME: why a container did not become healthy: Docker's health log first
# (that is where the reason is), then its last log lines.
show_failure() {
  exists "$1" || return 0
  warn "health checks of $1:"
  docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{"\n"}}{{end}}{{else}}no healthcheck; state {{.State.Status}}, exit code {{.State.ExitCode}}{{end}}' "$1" 2>/dev/null |
    tail -n 5 | cut -c 1-300 | sed 's/^/    /' >&2 || true
  warn "last log lines of $1:"
  docker logs --tail 30 "$1" 2>&1 | cut -c 1-300 | sed 's/^/    /' >&2 || true
}

# check_names_and_port: before anything changes, refuse containers that hold this stack's
# names or its port without being part of it. Prints "takeover" when the app's own api
# container holds the port (the first deploy on a NAS the app's compose runs).
check_names_and_port() {
  local name service labels holders
  for name in "$(container blue)" "$(container green)" "$PROXY_CONTAINER"; do
    exists "$name" || continue
    service=$name
    [[ $name != "$PROXY_CONTAINER" ]] || service=$PROXY_SERVICE
    labels=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.project"}}/{{index .Config.Labels "com.docker.compose.service"}}' "$name")
    [[ $labels == "$PROJECT/$service" ]] ||
      die "container $name exists but is not this stack's (compose labels '$labels'): rename or remove it, then deploy again" "$EXIT_REFUSED"
  done
  holders=$(docker ps --filter "publish=$PROXY_PORT" --format '{{.Names}}' | tr '\n' ' ')
  holders=${holders% }
  case $holders in
    "")
      if (exec 3<>"/dev/tcp/$PROXY_HOST/$PROXY_PORT") 2>/dev/null; then
        die "port $PROXY_PORT is in use by a process outside Docker: stop it, or set STACK_PROXY_PORT" "$EXIT_REFUSED"
      fi
      ;;
    "$PROXY_CONTAINER") ;;
    "$(app_container any)") echo takeover ;;
    *) die "port $PROXY_PORT is held by container $holders, not by $API_SERVICE: stop it, or set STACK_PROXY_PORT" "$EXIT_REFUSED" ;;
  esac
}

# --- history ---------------------------------------------------------------------------------

# record_release KIND COMMIT IMAGE COLOR: one tab-separated line per change of the live version,
# written beside the history and renamed over it: a full disk never leaves half a line.
record_release() {
  if ! { cat "$RELEASES" 2>/dev/null
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(utc_now)" "$1" "$2" "$3" "$4" "$(printable "${PERFORMER:-unknown}")"
  } >"$RELEASES.new"; then
    rm -f "$RELEASES.new"
    disk_full_or_die "could not write the release history $RELEASES" "$RELEASES"
  fi
  chmod 644 "$RELEASES.new"
  mv -f "$RELEASES.new" "$RELEASES"
}

# Keep the images (and definitions) of the last KEEP_RELEASES released commits, and always the
# live and the previous color's; docker refuses to delete an image a container uses, which
# guards the rest (the app's own container before a takeover among them).
prune_releases() {
  local keep tag dir tags err reason="" failed=0
  local -a unsure=()
  keep=$( (tac "$RELEASES" 2>/dev/null | awk -F'\t' -v n="${KEEP_RELEASES:-5}" '$3 != "app" && !seen[$3]++ && kept++ < n { print $3 }'
    color_commit blue
    color_commit green) | sort -u)
  # No list (Docker said why on stderr): nothing is removed.
  if tags=$(docker image ls "$API_REPO" --format '{{.Tag}}'); then
    for tag in $tags; do
      [[ $tag =~ ^[0-9a-f]{12}$ ]] || continue
      grep -qxF "$tag" <<<"$keep" || docker image rm "$API_REPO:$tag" >/dev/null 2>&1 || true
    done
  else
    warn "could not list the $API_REPO images: none was removed"
    failed=1
  fi
  # A definition goes only when Docker says its image does not exist (`Error: No such image: X`
  # from older CLIs, `Error response from daemon: No such image: X` from newer): a daemon that
  # does not answer, or any other failure, must not erase the live and the kept definitions.
  for dir in "$LOOPCTL_HOME/$RELEASES_DIR"/*; do
    tag=$(basename "$dir")
    [[ -d $dir && $tag =~ ^[0-9a-f]{12}$ ]] || continue
    if ! err=$(docker image inspect "$API_REPO:$tag" 2>&1 >/dev/null); then
      if [[ $err == *"No such image"* ]]; then
        rm -rf "$dir"
      else
        unsure+=("$tag")
        [[ -n $reason ]] || reason=${err%%$'\n'*}
      fi
    fi
  done
  if ((${#unsure[@]})); then
    warn "kept the definitions of ${unsure[*]}: their images could not be inspected: $(printable "$reason")"
    failed=1
  fi
  # Rebuilding a tag leaves the image it replaced untagged; only this stack's are pruned.
  docker image prune -f --filter dangling=true --filter "label=org.loopctl.project=$PROJECT" >/dev/null 2>&1 || true
  return "$failed"
}

# look_app_container any|running: the app's own api container in LOOK, made by its compose in
# APP_DIR (this stack's containers have a release's folder as their working folder), found by
# Compose's labels whatever it is named; "" when there is none; running: only one whose state
# is running (not paused), as `docker ps --filter status=running`. The newest first.
# `facts.sh status` reads it from its one look.
look_app_container() {
  awk -F'\t' -v service="\"$API_SERVICE\"" -v dir="\"$APP_DIR\"" -v running="$1" \
    '$9 == service && $10 == dir && (running != "running" || $5 == "running") { print substr($1, 2); exit }' <<<"$LOOK"
}

# app_container any|running: the same, as Docker is now (a new look): takeover, rollback and
# restart ask it after containers may have changed.
app_container() {
  look_at_containers
  look_app_container "$1"
}
