# shellcheck shell=bash
# The nginx switch: which color the proxy serves (the upstream file it reads), a new upstream
# file written beside it, nginx -t and the reload, and the requests through the port that tell
# whether the switch took. The proxy is the stack's nginx container (PROXY_CONTAINER): it reads
# the upstream file through a read-only mount (PROXY_LIVE_MOUNT) and serves on PROXY_PORT.
# Needs lib.sh and lib-deploy.sh (container, release_port, compose_release), which the scripts
# source first. Sourced, never run.

# The proxy address the scripts talk to: the published one, on this machine.
proxy_host() {
  PROXY_HOST=${PROXY_BIND:-127.0.0.1}
  [[ $PROXY_HOST != 0.0.0.0 ]] || PROXY_HOST=127.0.0.1
}

# --- what nginx serves -----------------------------------------------------------------------

# The color the upstream file names ("" when it is missing or garbled; write_upstream's format).
upstream_color() {
  [[ -r $UPSTREAM ]] || return 0
  # shellcheck disable=SC2016  # nginx variables, not shell ones
  sed -nE 's/^map \$host \$loop_color \{ default (blue|green); \}$/\1/p' "$UPSTREAM" | head -n 1
}

# The standby color the upstream file names ("" when none).
upstream_standby() {
  [[ -r $UPSTREAM ]] || return 0
  # shellcheck disable=SC2016  # nginx variables, not shell ones
  sed -nE 's/^map \$host \$loop_standby_color \{ default (blue|green); \}$/\1/p' "$UPSTREAM" | head -n 1
}

# The live color from the upstream file nginx reads ("app" while the app's own container,
# not loopctl's stack, holds the port; "" before any deploy). If that file is lost or garbled,
# nginx still serves the last one it loaded: the proxy says which color that is (and a warning
# says so; the change writes the file again).
live_color() {
  local color
  if [[ -e $APP_LIVE ]]; then
    echo app
    return
  fi
  color=$(upstream_color)
  if [[ -z $color && -n ${PROXY_PORT:-} ]] && is_running "$PROXY_CONTAINER"; then
    read -r _ color < <(ask_port 2)
    [[ $color == blue || $color == green ]] || color=""
    [[ -z $color ]] || warn "the upstream file $UPSTREAM is missing or garbled; the proxy serves $color, taken as live (the switch writes the file again)"
  fi
  echo "$color"
}

# --- the switch ------------------------------------------------------------------------------

# write_upstream COLOR STANDBY [PORT]: COLOR serves; sessions it does not know go to STANDBY
# (a color, or "" for none: a standby whose container does not run is none). PORT is COLOR's
# container port (default: the loaded release's).
write_upstream() {
  local standby=${2:-} standby_at=none name running image commit=""
  # Both containers in one look (each docker call costs a rollback ~20 ms).
  while read -r name running image; do
    if [[ $name == "/$(container "$1")" ]]; then
      commit=${image##*:}
    elif [[ -n $standby && $name == "/$(container "$standby")" && $running == true && -n $(release_port "${image##*:}") ]]; then
      standby_at=$(container "$standby"):$(release_port "${image##*:}")
    fi
  done < <(docker inspect -f '{{.Name}} {{.State.Running}} {{.Config.Image}}' "$(container "$1")" \
    ${standby:+"$(container "$standby")"} 2>/dev/null || true)
  [[ $standby_at != none ]] || standby=none
  cat <<EOF
# Live color, written by loopctl at $(utc_now): $1 (commit $commit); standby: $standby.
# Do not edit: every deploy and rollback replaces this file.
map \$host \$loop_upstream { default $(container "$1"):${3:-$CONTAINER_PORT}; }
map \$host \$loop_color { default $1; }
map \$host \$loop_standby { default $standby_at; }
map \$host \$loop_standby_color { default $standby; }
EOF
}

# write_candidate COLOR STANDBY [PORT]: the upstream for COLOR beside the live one (same
# folder, so renaming it into place is atomic). Prints its path.
write_candidate() {
  local candidate=$UPSTREAM.next
  mkdir -p "$(dirname "$UPSTREAM")"
  write_upstream "$@" >"$candidate"
  chmod 644 "$candidate"
  echo "$candidate"
}

# nginx -t in a throwaway container of the proxy image, for when no proxy runs yet.
nginx_test_offline() {
  docker run --rm --network none -v "$LOOPCTL_HOME/$NGINX_CONF_DIR:$PROXY_CONF_MOUNT:ro" \
    -v "$(dirname "$1"):$PROXY_LIVE_MOUNT:ro" --entrypoint sh "$PROXY_IMAGE" -c \
    'sed "s#$3/$2#$3/$1#" "$4/nginx.conf" >/tmp/t.conf && nginx -t -q -c /tmp/t.conf' \
    sh "$(basename "$1")" "$(basename "$UPSTREAM")" "$PROXY_LIVE_MOUNT" "$PROXY_CONF_MOUNT"
}

# test_and_reload_proxy: nginx -t on the files in place, then nginx re-reads them, in one exec
# (each costs a rollback about 0.1 s). Through `nginx -s reload` inside the container, not
# `docker kill --signal HUP`: Docker counts any kill as a manual stop, and a container stopped
# by hand is not restarted by its restart policy when Docker starts again (a NAS reboot).
# Its notice ("signal process started") is only shown when it fails. Exit 1: the test failed
# (nothing reloaded); 2: the reload failed.
test_and_reload_proxy() {
  local said
  # shellcheck disable=SC2016  # expanded by the inner sh
  said=$(docker exec "$PROXY_CONTAINER" sh -c 'nginx -t -q -c "$1" || exit 1; nginx -q -c "$1" -s reload || exit 2' \
    sh "$PROXY_CONF_MOUNT/nginx.conf" 2>&1) && return 0
  local rc=$?
  printf '%s\n' "$said" | tail -n 3 >&2
  return "$rc"
}

# switch_to COLOR STANDBY [PORT]: write to a temp file, rename it into place, test and reload;
# a file nginx -t refuses is replaced by the one before at once (nginx reads the file only on a
# reload, so it never saw it). With no proxy running, the candidate is tested in a throwaway
# container and the proxy started on it.
switch_to() {
  local candidate rc=0
  candidate=$(write_candidate "$@")
  if is_running "$PROXY_CONTAINER"; then
    rm -f "$UPSTREAM.prev"
    [[ ! -e $UPSTREAM ]] || ln -f "$UPSTREAM" "$UPSTREAM.prev"
    mv -f "$candidate" "$UPSTREAM"
    test_and_reload_proxy || rc=$?
    if ((rc == 1)); then
      if [[ -e $UPSTREAM.prev ]]; then mv -f "$UPSTREAM.prev" "$UPSTREAM"; else rm -f "$UPSTREAM"; fi
      warn "nginx -t failed: no switch"
      return 1
    fi
    rm -f "$UPSTREAM.prev"
    ((rc == 0)) || { warn "nginx did not reload"; return 1; }
  else
    if ! nginx_test_offline "$candidate"; then
      rm -f "$candidate"
      warn "nginx -t failed: no switch"
      return 1
    fi
    mv -f "$candidate" "$UPSTREAM"
    compose_release "$SHORT" up -d --no-deps --no-build proxy
    wait_port_answers || warn "the proxy does not answer on port $PROXY_PORT yet"
  fi
}

# --- asking the port -------------------------------------------------------------------------

# ask_port SECONDS: one GET of the health path through the proxy's port, given SECONDS; prints
# its status and the color that served it (the proxy's X-Loop-Color, "" without one): "200 blue",
# "0 " when nothing answered. The one request every look at the port makes.
ask_port() {
  curl -sS -m "$1" -o /dev/null -D - "http://$PROXY_HOST:$PROXY_PORT$HEALTH_PATH" 2>/dev/null |
    awk 'NR == 1 && $2 ~ /^[0-9]+$/ { code = $2 } tolower($1) == "x-loop-color:" { c = $2 }
      END { gsub(/\r/, "", c); print (code ? code : 0), c }'
}

# wait_port_answers: the proxy port answers HTTP (tried 0.1 s apart, up to 10 s).
# shellcheck disable=SC2153  # PROXY_PORT comes from the release's fields
wait_port_answers() {
  local i code
  for ((i = 0; i < 100; i++)); do
    read -r code _ < <(ask_port 1)
    [[ $code == 0 ]] || return 0
    sleep 0.1
  done
  return 1
}

# verify_through_proxy COLOR SECONDS: for the window, every request through the proxy port (ten
# a second) must be a 200 from COLOR ("": from whoever holds the port, the app's own container
# after a rollback to it); with 0, the first 200 from COLOR ends it. The reload is asynchronous,
# so the old workers may answer for a moment first (the old color, or an error when its
# container is gone); after 10 s that counts as a failed switch.
verify_through_proxy() {
  local color=$1 window=$(($2 * 1000)) start seen=0 code served waited who=proxy
  local url="http://$PROXY_HOST:$PROXY_PORT$HEALTH_PATH"
  [[ -n $color ]] || who="port $PROXY_PORT"
  start=$(ms_now)
  while :; do
    read -r code served < <(ask_port 3)
    waited=$(($(ms_now) - start))
    if [[ $code != 200 ]] && ((seen || waited >= 10000)); then
      warn "$who answered $code for $url"
      return 1
    elif [[ $code != 200 ]]; then
      :
    elif [[ -z $color || $served == "$color" ]]; then
      seen=1
    elif ((seen)); then
      warn "traffic went back to '$served'"
      return 1
    elif ((waited >= 10000)); then
      warn "traffic still reaches '$served' 10s after the reload"
      return 1
    fi
    ((seen && waited >= window)) && return 0
    # Until the new workers answer, quicker: a rollback serves once they do.
    if ((seen)); then sleep 0.1; else sleep 0.05; fi
  done
}
