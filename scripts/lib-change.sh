# shellcheck shell=bash
# The change transaction of deploy-blue-green.sh, rollback.sh, rebuild-all.sh and restart.sh:
# their flags, the state of a change in progress, the switch and its verification, the undo on
# any failure before the change commits, and the repair of a change that was killed before it
# could undo itself. A change script sources lib.sh, then this file, which brings the four
# libraries a change uses (and it calls into each): the stack and its releases, the nginx
# switch, the MCP gate, the OAuth state. Sourced, never run; facts.sh and prepare.sh, which
# change nothing, do without it.

. "${BASH_SOURCE[0]%/*}/lib-deploy.sh"
. "${BASH_SOURCE[0]%/*}/lib-proxy.sh"
. "${BASH_SOURCE[0]%/*}/lib-mcp.sh"
. "${BASH_SOURCE[0]%/*}/lib-oauth.sh"

# --- flags ---------------------------------------------------------------------------------

# parse_release_flags [allow-tool-removal]: the script's own flags (EXTRA_FLAGS) when it
# deploys a release (deploy, rebuild-all): --commit SHA --release DIR [--build-timeout S], and
# --allow-tool-removal where the caller names it; sets COMMIT_ARG, RELEASE_FROM and
# ALLOW_TOOL_REMOVAL. Anything else is bad usage.
parse_release_flags() {
  local flag
  COMMIT_ARG="" RELEASE_FROM="" ALLOW_TOOL_REMOVAL=0
  for flag in ${EXTRA_FLAGS[@]+"${EXTRA_FLAGS[@]}"}; do
    case $flag in
      commit=*) COMMIT_ARG=${flag#commit=} ;;
      release=*) RELEASE_FROM=${flag#release=} ;;
      build-timeout=*) BUILD_TIMEOUT=${flag#build-timeout=} ;;
      allow-tool-removal=1) [[ ${1:-} == allow-tool-removal ]] || usage_error; ALLOW_TOOL_REMOVAL=1 ;;
      *) usage_error ;;
    esac
  done
  [[ $COMMIT_ARG =~ ^[0-9a-f]{40}$ && $RELEASE_FROM == /* && $BUILD_TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_error
}

# parse_flags ARGS...: the flags every change script takes; sets EXTRA_FLAGS to the rest
# (as NAME=VALUE words, NAME=1 for a switch such as --allow-tool-removal) for the script's own.
# --help prints the usage and exits 0.
parse_flags() {
  EXTRA_FLAGS=()
  while (($#)); do
    [[ $1 == --help || $1 == -h ]] && { usage; exit 0; }
    if [[ $1 == --allow-tool-removal ]]; then
      EXTRA_FLAGS+=(allow-tool-removal=1)
      shift
      continue
    fi
    [[ $# -ge 2 && $1 == --* ]] || usage_error
    case $1 in
      --performer) PERFORMER=$(printable "$2") ;;
      --health-timeout) HEALTH_TIMEOUT=$2 ;;
      --verify-seconds) VERIFY_SECONDS=$2 ;;
      *) EXTRA_FLAGS+=("${1#--}=$2") ;;
    esac
    shift 2
  done
  [[ $HEALTH_TIMEOUT =~ ^[0-9]+$ && $VERIFY_SECONDS =~ ^[0-9]+$ ]] || usage_error
}

# refuse_unsafe_home: what `inv setup` checks and a deploy's preflight refuses, for a change
# that runs without that preflight (a rollback, to switch sooner).
refuse_unsafe_home() {
  local why
  look_at_containers
  why=$(unsafe_home; rw_mounts_of_home)
  [[ -z $why ]] || die "the loopctl home is not safe for root: $(head -n 1 <<<"$why") (run 'inv setup')" "$EXIT_REFUSED"
}

# --- the transaction: undone on any failure before it commits ------------------------------
# What a change in progress shares (the color it leaves, the one it brings up, how far it got)
# is declared in one block, the state of a change, at the end of this file.

# --- the app's other services: changed after the gate, put back by the undo ----------------

# aux_ids SERVICE: the ids of the containers Compose runs for one of the app's other services.
aux_ids() {
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1"
}

# image_id NAME: the id of the image NAME names, or "none".
image_id() {
  local id
  id=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null) && [[ -n $id ]] || id=none
  printf '%s' "$id"
}

# note_images: before the build, the image each tag it moves names: the api's commit tag
# ("none": new) and the image of every container of the app's other built services (Compose
# names theirs without a commit: a build moves the tag off the image they run). The journal
# keeps the list, as NAME@ID words, for an undo after a kill.
note_images() {
  local service id
  local -a entries=("$API_REPO:$SHORT@$(image_id "$API_REPO:$SHORT")")
  for service in ${BUILD_SERVICES//,/ }; do
    for id in $(aux_ids "$service"); do
      entries+=("$(docker inspect -f '{{.Config.Image}}@{{.Image}}' "$id")")
    done
  done
  IMAGES=$(IFS=,; printf '%s' "${entries[*]}")
  journal_set images "$IMAGES"
}

# restore_images: each tag of IMAGES back on the image it named (or gone, if it was new); the
# images the build made and nothing uses any more are removed. Exit 1 if a tag could not be
# put back.
restore_images() {
  local entry name old now failed=0
  for entry in ${IMAGES//,/ }; do
    name=${entry%@*} old=${entry##*@}
    [[ -n $name && ($old == none || $old =~ ^sha256:[0-9a-f]{64}$) ]] || { warn "not an image to put back: $entry"; continue; }
    now=$(image_id "$name")
    [[ $now != "$old" ]] || continue
    if [[ $old == none ]]; then
      docker image rm "$name" >/dev/null 2>&1 || true
    else
      docker tag "$old" "$name" || failed=1
    fi
    # Refused while a container runs it or another tag names it: then it stays.
    [[ $now == none ]] || docker image rm "$now" >/dev/null 2>&1 || true
  done
  return "$failed"
}

# update_aux: once the gate passed, the app's other services on the new release. Compose
# replaces only those whose definition or image changed; each replaced one is waited for.
update_aux() {
  T_AUX=0
  [[ -n $AUX_SERVICES ]] || return 0
  local service before after t0 id name
  local -A was=()
  for service in ${AUX_SERVICES//,/ }; do was[$service]=$(aux_ids "$service" | sort | tr '\n' ' '); done
  aux_changed=1
  journal_set step aux
  t0=$(ms_now)
  # shellcheck disable=SC2086  # a comma list made words
  compose_release "$SHORT" up -d --no-deps --no-build ${AUX_SERVICES//,/ }
  for service in ${AUX_SERVICES//,/ }; do
    before=${was[$service]} after=$(aux_ids "$service" | sort | tr '\n' ' ')
    [[ $after != "$before" ]] || continue
    for id in $after; do
      name=$(docker inspect -f '{{.Name}}' "$id")
      wait_healthy "${name#/}" "$HEALTH_TIMEOUT" || die "${name#/} did not become healthy on the new release"
    done
    step "$service replaced and healthy in $(elapsed "$t0" "$(ms_now)")"
  done
  T_AUX=$(($(ms_now) - t0))
}

# up_as_release SHORT [--force-recreate] SERVICES...: those services brought up as release SHORT
# defines them, with its fields (its bind sources checked), in a subshell: the change's own
# release stays loaded. For an undo, which puts back what an older release ran.
up_as_release() {
  local short=$1
  shift
  (load_release "$short" && compose_release "$short" up -d --no-deps --no-build "$@")
}

# restore_aux: the undo of update_aux: every tag back where it was and, if the services had
# been brought up on the new release, up again on the live one's (Compose puts back those whose
# image or definition differs). Exit 1 if a part failed.
restore_aux() {
  local failed=0 short=""
  restore_images || failed=1
  if ((aux_changed)) && [[ -n $AUX_SERVICES ]]; then
    [[ $live == app ]] || short=$(color_commit "$live")
    if [[ -n $short && -f $(release_dir "$short")/$RELEASE_STACK_FILE ]]; then
      warn "putting ${AUX_SERVICES//,/, } back on $short"
      # shellcheck disable=SC2086  # a comma list made words
      up_as_release "$short" ${AUX_SERVICES//,/ } || failed=1
    else
      warn "${AUX_SERVICES//,/, } stay on the new release: what ran before was not a loopctl release"
    fi
  fi
  return "$failed"
}

# give_port_to_proxy: the takeover's switch. The app's own container holds the port; stop it
# and start the (already created) proxy in its place. Connections are refused in between:
# the gap is measured and printed.
give_port_to_proxy() {
  local t0 t1
  t0=$(ms_now)
  docker stop -t 5 "$LEGACY_CONTAINER" >/dev/null
  docker start "$PROXY_CONTAINER" >/dev/null
  wait_port_answers || warn "the proxy does not answer on port $PROXY_PORT"
  t1=$(ms_now)
  step "port $PROXY_PORT moved from $LEGACY_CONTAINER to $PROXY_CONTAINER in $(elapsed "$t0" "$t1")"
}

# give_port_to_app: the takeover undone (or rolled back): the proxy stops, the app's own
# container gets its port back.
give_port_to_app() {
  local -a sources
  local source
  mapfile -t sources < <(docker inspect -f '{{range .Mounts}}{{if eq .Type "bind"}}{{.Source}}{{"\n"}}{{end}}{{end}}' "$LEGACY_CONTAINER" | grep .)
  # Its compose mounts folders the running colors write (the checkout): they are paused while the
  # sources are checked and Docker mounts them, so what is mounted is what was checked.
  local rc=0
  for source in ${sources[@]+"${sources[@]}"}; do pause_writers "$source"; done
  if ! (check_bind_sources ${sources[@]+"${sources[@]}"}); then
    resume_writers
    exit "$EXIT_REFUSED"
  fi
  docker stop -t 5 "$PROXY_CONTAINER" >/dev/null 2>&1 || true
  docker start "$LEGACY_CONTAINER" >/dev/null || rc=$?
  resume_writers
  return "$rc"
}

# bring_up created|started: the change is about to create the target's container (or start a
# kept one): the undo removes (or stops) it. The journal keeps it too, for a killed change.
bring_up() {
  brought_up=$1
  journal_set brought "$1"
}

# EXIT trap of deploy and rollback: a change that did not commit is undone so the live color
# keeps serving. If a part of the undo fails (Docker is down), the journal stays on disk and
# the next change finishes it (recover_change).
finish_change() {
  local status=$?
  trap - EXIT
  resume_writers
  if ((RECOVERING)); then
    # The repair of the last change stopped half-way: what is on disk stays as it is, journal
    # included, for the next change to repair.
    ((status != 0)) || status=$EXIT_FAILED
    release_lock
    exit "$status"
  fi
  if ((committed && status != 0)); then
    # The new release serves: bookkeeping that failed afterwards (a full disk) is said, not
    # reported as a failed change someone would roll back.
    warn "the change is done and serving, but a step after it failed (exit $status): check 'inv status'"
    status=0
  fi
  if ((!committed)); then
    ((status != 0)) || status=$EXIT_FAILED
    undo_change || {
      warn "the undo is not complete (is Docker running?): the next 'inv rebuild' or 'inv rollback' finishes it"
      release_lock
      exit "$status"
    }
  fi
  journal_clear
  release_lock
  exit "$status"
}

# undo_plan LIVE TARGET SWITCHED BROUGHT_UP RETIRED: the steps of undo_change, one a line, from
# the change's state alone (nothing is looked at), so that each case is a table row in a test:
#   port-to-proxy         a rollback to the app's own container undone: the proxy takes the port
#   port-to-app           a takeover undone: the app's own container gets its port back
#   switch-back LIVE      nginx back to the live color
#   remove|stop TARGET    the target's container the change created, or the kept one it started
#   restore-aux           the tags and the app's other services back (always)
#   restore-standby       the warm standby the change replaced (retire_standby) back in its place
#   undone LIVE           the undo says the live release still serves
# Traffic goes back first, and only once it may have moved (SWITCHED 1). The app's own container
# is never the change's to remove. The standby comes back only where the change replaced its
# container: bring_up created comes after the standby left the proxy.
undo_plan() {
  local live=$1 target=$2 switched=$3 brought_up=$4 retired=$5
  if [[ $switched == 1 ]]; then
    if [[ $target == app ]]; then
      echo port-to-proxy
    elif [[ $live == app ]]; then
      echo port-to-app
    elif [[ -n $live ]]; then
      echo "switch-back $live"
    fi
  fi
  if [[ -n $brought_up && $target != app ]]; then
    if [[ $brought_up == created ]]; then echo "remove $target"; else echo "stop $target"; fi
  fi
  echo restore-aux
  [[ -z $retired || $brought_up != created || $target == app || $live == app || -z $live ]] || echo restore-standby
  # Said only where the change had changed something.
  [[ -z $live || (-z $brought_up && $switched != 1) ]] || echo "undone $live"
}

# undo_change: traffic back to the live color (or the port back to whichever container held
# it); the target's container removed if the change created it, stopped if it only started a
# kept one. Runs undo_plan's steps for the globals live, target, switched, brought_up and
# RETIRED, which a change sets as it goes and recover_change sets from the journal. Each step
# is tried even when one before failed; the standby and the "undone" line only if none did.
# Exit 1 if a part of it failed.
undo_change() {
  local failed=0 entry action what name
  local -a plan
  # Read whole first: the steps' commands must not read the plan as their input.
  mapfile -t plan < <(undo_plan "$live" "$target" "$switched" "$brought_up" "$RETIRED")
  for entry in "${plan[@]}"; do
    # No here-string: on an older bash that is a temporary file, and the disk may be full.
    action=${entry%% *} what=${entry#"${entry%% *}"} what=${what# }
    case $action in
      port-to-proxy)
        warn "giving port $PROXY_PORT back to $PROXY_CONTAINER"
        give_port_to_proxy || { warn "could not start $PROXY_CONTAINER again: check 'inv status'"; failed=1; }
        ;;
      port-to-app)
        warn "giving port $PROXY_PORT back to $LEGACY_CONTAINER"
        if give_port_to_app; then
          printf '%s\n' "$LEGACY_CONTAINER" >"$APP_LIVE"
        else
          warn "could not start $LEGACY_CONTAINER again: check 'inv status'"
          failed=1
        fi
        ;;
      switch-back)
        warn "switching back to $what"
        switch_to "$what" "" "$(color_port "$what")" ||
          { warn "could not switch back to $what: check 'inv status'"; failed=1; }
        ;;
      remove | stop)
        name=$(container "$what")
        # Gone already (removed by hand, or the change was killed before it made it).
        exists "$name" || continue
        show_failure "$name"
        if [[ $action == remove ]]; then
          warn "removing $name"
          docker rm -f "$name" >/dev/null 2>&1 || failed=1
        else
          warn "stopping $name again"
          docker stop -t 10 "$name" >/dev/null 2>&1 || failed=1
        fi
        ;;
      restore-aux)
        restore_aux || { warn "could not put the app's other services back as they were: check 'inv status'"; failed=1; }
        ;;
      restore-standby) ((failed)) || restore_standby ;;
      undone) ((failed)) || warn "undone: $what is still serving" ;;
    esac
  done
  return "$failed"
}

# --- recovery: a change killed before its trap could run ----------------------------------

# repair_plan: the journal (stdin) as a repair reads it, and what the repair is, as KEY=VALUE
# lines: every journal field (op commit live target step brought backup paused images
# standby; "" where the journal has none), then repair, switched and aux_changed. Decided from
# the journal alone (nothing is looked at), so each case is a table row in a test. A line that
# is not a known field with a value a field can have (a garbled or half-written journal) is
# ignored; the last of a repeated field counts. The repair:
#   undo         a deploy or rollback that had not committed: undone as its trap would have
#   bookkeeping  one that had (step committed): it serves and was verified, only the record and
#                the old color's retirement are left
#   recreate     a rebuild-all past its backup (step replace): the keys may be gone, the stack
#                half recreated
#   unchanged    a rebuild-all before it: nothing had changed yet
#   none         any other op: nothing to repair
# switched: 1 once traffic may have moved (steps switch and verify). aux_changed: 1 once a
# deploy may have brought the app's other services up on its release (update_aux: step aux on).
repair_plan() {
  local line key op at repair=none switched=0 aux_changed=0
  local -a keys=(op commit live target step brought backup paused images standby)
  local -A field=()
  for key in "${keys[@]}"; do field[$key]=""; done
  while IFS= read -r line; do
    [[ $line =~ ^([a-z]+)=([A-Za-z0-9_./:@,-]*)$ && -n ${field[${BASH_REMATCH[1]}]+known} ]] || continue
    field[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  done
  op=${field[op]} at=${field[step]}
  case $op in
    deploy | rollback)
      repair=undo
      [[ $at != committed ]] || repair=bookkeeping
      [[ $at != switch && $at != verify ]] || switched=1
      # Only a deploy changes them, from its step aux on.
      [[ $op != deploy ]] || [[ $at != aux && $switched == 0 ]] || aux_changed=1
      ;;
    rebuild-all)
      repair=unchanged
      [[ $at != replace ]] || repair=recreate
      ;;
  esac
  for key in "${keys[@]}"; do printf '%s=%s\n' "$key" "${field[$key]}"; done
  printf 'repair=%s\nswitched=%s\naux_changed=%s\n' "$repair" "$switched" "$aux_changed"
}

# recover_change: run by deploy, rollback and rebuild-all as soon as they hold the lock. A
# journal on disk means the last change was killed (SIGKILL, OOM, power loss: no EXIT trap
# runs) or could not finish its undo. From the journal and what runs now, it is finished if it
# had committed (its record written) and undone otherwise, exactly as its trap would have, so
# one release serves before this change starts. What to do is repair_plan's; this runs it.
recover_change() {
  [[ -s $JOURNAL ]] || return 0
  local line op commit at repair
  # Until the repair is done, the journal stays whatever happens (a trap reads this).
  RECOVERING=1
  local -A plan=()
  while IFS= read -r line; do plan[${line%%=*}]=${line#*=}; done < <(repair_plan <"$JOURNAL")
  op=${plan[op]} commit=${plan[commit]} at=${plan[step]} repair=${plan[repair]}
  warn "the last $op${commit:+ of $commit} was cut short at step '$at' and could not finish or undo itself: repairing that first"
  # Containers it had paused to copy the OAuth state run again.
  if [[ -n ${plan[paused]} ]]; then
    IFS=, read -ra PAUSED <<<"${plan[paused]}"
    resume_writers
  fi
  case $repair in
    undo | bookkeeping)
      live=${plan[live]} target=${plan[target]} brought_up=${plan[brought]} switched=${plan[switched]} committed=0
      IMAGES=${plan[images]} aux_changed=${plan[aux_changed]} RETIRED=${plan[standby]}
      # The release being deployed, for the proxy's address and the record (the live one's when
      # the journal names none).
      [[ -n $commit ]] || commit=$(color_commit "$live")
      if [[ -n $commit ]] && (load_release "$commit") >/dev/null 2>&1; then load_release "$commit"; fi
      proxy_host
      [[ $live != app && $target != app ]] || LEGACY_CONTAINER=$(app_container any)
      if [[ $repair == bookkeeping ]]; then
        recover_bookkeeping "$op" "$commit"
      else
        undo_change || die "the repair of the last $op is not complete (is Docker running?): nothing else was changed" "$EXIT_FAILED"
        RECOVERED="$op of ${commit:-?} undone; ${live:-nothing} serves"
      fi
      ;;
    unchanged) step "the last rebuild-all had changed nothing yet" ;;
    recreate) recover_rebuild_all "$commit" "${plan[target]}" "${plan[backup]}" ;;
  esac
  journal_clear
  RECOVERING=0
  # This change starts from a clean slate, and from what Docker says after the repair.
  live="" target="" switched=0 committed=0 brought_up="" IMAGES="" aux_changed=0 RETIRED=""
  look_at_containers
}

# recreate_all SHORT COLOR BACKUP: the app's other services, COLOR and the proxy recreated from
# release SHORT (they start without keys and make new ones), each waited for.
recreate_all() {
  local short=$1 color=$2 backup=$3 service
  step "recreating ${AUX_SERVICES:+${AUX_SERVICES//,/, }, }$(container "$color") and the proxy (new OAuth keys)"
  mv -f "$(write_candidate "$color" "$(other_color "$color")")" "$UPSTREAM"
  ensure_shared_objects
  # shellcheck disable=SC2086  # a comma list made words
  compose_release "$short" up -d --no-deps --no-build --force-recreate ${AUX_SERVICES//,/ } "$(container "$color")" proxy
  for service in ${AUX_SERVICES//,/ }; do
    wait_healthy "$(compose_release "$short" ps -q "$service" | head -n 1)" "$HEALTH_TIMEOUT" ||
      die "$service did not become healthy; the backup is in $backup"
  done
  wait_healthy "$(container "$color")" "$HEALTH_TIMEOUT" || die "$(container "$color") did not become healthy; the backup is in $backup"
  wait_port_answers || true
}

# recover_rebuild_all COMMIT COLOR BACKUP: a rebuild-all killed after its backup (repair_plan's
# recreate): the keys may be gone and the stack half recreated; it is brought up as rebuild-all
# would have, and recorded.
recover_rebuild_all() {
  local commit=$1 color=$2 backup=$3
  load_release "$commit"
  proxy_host
  recreate_all "$commit" "$color" "$backup"
  record_release rebuild-all "$commit" "$API_REPO:$commit" "$color"
  step "finished the last rebuild-all of $commit on $color; the old keys are in $backup"
}

# recover_bookkeeping OP COMMIT: a change killed after it committed: its release serves and was
# verified; only what came after is done now (the record, retiring the old color).
recover_bookkeeping() {
  local last
  last=$(tail -n 1 "$RELEASES" 2>/dev/null | cut -f3)
  if [[ $target == app ]]; then
    [[ $last == app ]] || record_release "$1" app "$(docker inspect -f '{{.Config.Image}}' "$(app_container any)" 2>/dev/null)" app
  elif [[ $last != "$2" ]]; then
    record_release "$1" "$2" "$API_REPO:$2" "$target"
  fi
  retire_old
  step "the last $1 had switched and been verified: recorded it as done"
}

# switch_and_verify: the common end of deploy and rollback, from a healthy target on.
switch_and_verify() {
  step "switching nginx to $target"
  switched=1
  journal_set step switch
  switch_to "$target" "$live" || die "nginx did not accept the new upstream"
  T_SWITCHED=$(ms_now)
  verify_and_commit
}

# takeover_and_verify: the first switch on a NAS where the app's own container holds the
# port: the proxy is created (not started) on the new upstream, then takes the port.
takeover_and_verify() {
  local candidate
  step "taking port $PROXY_PORT over from $LEGACY_CONTAINER (the app's own container, kept for rollback)"
  candidate=$(write_candidate "$target" "")
  nginx_test_offline "$candidate" || { rm -f "$candidate"; die "nginx -t failed: no switch"; }
  # From here on an undo gives the port back (and says the app's container serves).
  switched=1
  mv -f "$candidate" "$UPSTREAM"
  compose_release "$SHORT" up --no-start --no-deps proxy
  journal_set step switch
  give_port_to_proxy
  T_SWITCHED=$(ms_now)
  verify_and_commit
}

verify_and_commit() {
  step "verifying through the proxy for ${VERIFY_SECONDS}s"
  journal_set step verify
  verify_through_proxy "$target" "$VERIFY_SECONDS" || die "verification through the proxy failed"
  # nginx's old workers may take a new connection for a moment after the reload: an MCP session
  # they serve is tried again (for up to the 10 s verify_through_proxy allows them too).
  local tries=0 MCP_FIRST
  # shellcheck disable=SC2034  # read by mcp_tools (lib-mcp.sh), from this scope
  MCP_FIRST=$(release_opening "$SHORT")
  until mcp_tools "http://$PROXY_HOST:$PROXY_PORT" "$target"; do
    if [[ $MCP_ERROR != "the MCP session was served by '"* ]] || ((++tries >= 100)); then
      die "MCP through the proxy failed: $MCP_ERROR"
    fi
    sleep 0.1
  done
  T_VERIFIED=$(ms_now)
  committed=1
  journal_set step committed
}

# retire_old: after the commit, the replaced release stays. With KEEP_WARM (the default) it
# runs on as the warm standby: the sessions it holds go on (the proxy sends it the requests the
# live color does not know), and a rollback is only a switch. Without, it stops (a rollback
# starts it again in seconds). Nothing here can fail the change: the new release serves.
retire_old() {
  local name
  if [[ $live == app ]]; then
    rm -f "$APP_LIVE"
    return
  fi
  [[ -n $live ]] || return 0
  name=$(container "$live")
  is_running "$name" || return 0
  if keeps_oauth_in_checkout "$name"; then
    step "stopping $name (kept): its release mounts the OAuth folder from the checkout, and the state now lives in the volume"
    switch_to "$target" "" || warn "could not take $name out of the proxy as the standby"
    docker stop -t 10 "$name" >/dev/null || warn "could not stop $name"
    return
  fi
  if [[ $KEEP_WARM == 1 ]]; then
    step "$name stays up as the warm standby: its open sessions go on; rollback is a switch"
    return
  fi
  step "stopping $name (kept for rollback; KEEP_WARM=0)"
  switch_to "$target" "" || warn "could not take $name out of the proxy as the standby"
  docker stop -t 10 "$name" >/dev/null || warn "could not stop $name"
}

# retire_standby: the target color about to be replaced is the warm standby: the proxy stops
# sending it sessions first (they end with it: they are a release old). RETIRED (and the
# journal) keep its commit, for restore_standby.
retire_standby() {
  [[ -n $live && $live != app && $(upstream_standby) == "$target" ]] || return 0
  RETIRED=$(color_commit "$target")
  journal_set standby "$RETIRED"
  step "replacing the warm standby $(container "$target") ($RETIRED): its sessions end"
  switch_to "$live" "" "$(color_port "$live")" || die "nginx did not accept the upstream without the standby"
}

# restore_standby: the undo of retire_standby, once the target's container is gone (undo_plan
# says when): the release RETIRED ran is started again in its place and is the standby again,
# so a failed change leaves a rollback the switch it was. Its sessions had ended. A failure
# here is said, and the live release serves on without a standby.
restore_standby() {
  if [[ ! -f $(release_dir "$RETIRED")/$RELEASE_STACK_FILE ]] || ! docker image inspect "$API_REPO:$RETIRED" >/dev/null 2>&1; then
    warn "the warm standby $RETIRED is not kept any more: none now"
    return 0
  fi
  warn "bringing the warm standby $RETIRED back on $(container "$target")"
  if up_as_release "$RETIRED" --force-recreate "$(container "$target")" &&
    wait_healthy "$(container "$target")" "$HEALTH_TIMEOUT" && switch_to "$live" "$target" "$(color_port "$live")"; then
    return 0
  fi
  warn "the warm standby $RETIRED did not come back: $live serves without one"
}

# mcp_gate: before any traffic moves, the new color must speak MCP as ChatGPT would reach it
# through the proxy (its container directly, with the headers the proxy adds). Its tools are
# compared with the live release's, and removing one needs --allow-tool-removal. Sets
# TOOLS_SUMMARY ("2->1") and T_GATE (milliseconds).
mcp_gate() {
  local name ip t0 new transport
  name=$(container "$target")
  ip=$(container_ip "$name")
  [[ -n $ip ]] || die "$name has no network address to check MCP on"
  t0=$(ms_now)
  mcp_tools "http://$ip:$CONTAINER_PORT" || die "the MCP gate failed on $name: $MCP_ERROR"
  transport="$MCP_TRANSPORT, protocol $MCP_REVISION"
  # The verification after the switch (and a rollback's, later) opens the way the gate did.
  [[ -z $MCP_OPENING ]] || printf '%s\n' "$MCP_OPENING" >"$(release_dir "$SHORT")/$RELEASE_MCP_FILE" ||
    warn "could not record how $SHORT answered MCP (its verifications try each way)"
  if [[ -n $MCP_AUTH ]]; then
    warn "$APP_MCP_PATH on $name answers $MCP_AUTH (authorization required): only that was checked, tools not compared"
    TOOLS_SUMMARY=unknown T_GATE=$(($(ms_now) - t0))
    return
  fi
  new=$MCP_TOOLS
  if [[ -z $live ]]; then
    mcp_compare "" "$new"
  elif mcp_tools "http://$PROXY_HOST:$PROXY_PORT" && [[ -z $MCP_AUTH ]]; then
    mcp_compare "$MCP_TOOLS" "$new"
  else
    warn "the live release's tools could not be listed (${MCP_ERROR:-authorization required}): not compared"
    mcp_compare "" "$new"
    MCP_COMPARED="tools: ? -> ${MCP_COMPARED##* }"
  fi
  T_GATE=$(($(ms_now) - t0))
  step "MCP gate passed on $name in $(elapsed 0 "$T_GATE"); $MCP_COMPARED; $transport"
  TOOLS_SUMMARY=$(sed -E 's/^tools: ([^ ,]+) -> ([^ ,]+).*/\1->\2/; s/^tools: ([^ ,]+)$/\1/' <<<"$MCP_COMPARED")
  if [[ -n $MCP_REMOVED && $ALLOW_TOOL_REMOVAL != 1 ]]; then
    die "refused: the new release removes $MCP_REMOVED (ChatGPT may call it); deploy with --allow-tool-removal if that is meant" "$EXIT_REFUSED"
  fi
}

# --- the state of a change ---------------------------------------------------------------------
# Every name a change shares between the script and these libraries, set here as the file is
# sourced (none comes from the caller's environment). Each says who sets it and who reads it.
# Declared last: shellcheck takes a name's last assignment in a file for its declaration, and
# this one suppression then covers the names only the scripts read.
# shellcheck disable=SC2034
{
  # The flags (parse_flags, parse_release_flags; restart.sh its own): PERFORMER (who changes;
  # read by take_lock and record_release), EXTRA_FLAGS (the script's own flags, read by its
  # main), COMMIT_ARG and RELEASE_FROM (--commit, --release: read by deploy and rebuild-all),
  # ALLOW_TOOL_REMOVAL (--allow-tool-removal; rollback.sh sets it for a release it starts;
  # read by mcp_gate).
  PERFORMER=unknown EXTRA_FLAGS=() COMMIT_ARG="" RELEASE_FROM="" ALLOW_TOOL_REMOVAL=0
  # VERIFY_SECONDS: --verify-seconds (parse_flags), how long the proxy is watched after the
  # switch; deploy's and rebuild-all's default here, rollback's set by rollback_flags first.
  # Read by verify_and_commit and the scripts' own verification.
  VERIFY_SECONDS=$DEPLOY_VERIFY_SECONDS
  # live: the color serving when the change began ("app": the app's own container; "": none).
  # target: the color the change brings up ("app": the port back to the app's own container).
  # Set by the scripts' main (and recover_change, from the journal); read by the switch, the
  # gate, retire_old, retire_standby, restore_standby, restore_aux and undo_change.
  live="" target=""
  # LEGACY_CONTAINER: the app's own api container around a takeover or a rollback to it. Set by
  # deploy's and rollback's main and recover_change; read by give_port_to_proxy,
  # give_port_to_app and undo_change.
  LEGACY_CONTAINER=""
  # switched: 1 once traffic may have moved (nginx rewritten, the port handed over). Set by
  # switch_and_verify, takeover_and_verify, rollback_to_app and recover_change; read by
  # undo_change. committed: 1 once the change is verified: nothing is undone after. Set by
  # verify_and_commit, rollback.sh and restart.sh; read by finish_change.
  switched=0 committed=0
  # brought_up: created|started, the target's container the change made or started (bring_up;
  # recover_change from the journal); read by undo_change, restore_standby and rollback.sh.
  brought_up=""
  # IMAGES: the tags the build moves, as NAME@ID before it (note_images; recover_change); read
  # by restore_images. aux_changed: 1 once update_aux brought the app's other services up on
  # the new release (recover_change too); read by restore_aux.
  IMAGES="" aux_changed=0
  # RETIRED: the commit of the warm standby the change replaced (retire_standby;
  # recover_change); read by restore_standby.
  RETIRED=""
  # PAUSED: containers pause_writers paused (lib-oauth.sh; recover_change from the journal);
  # resume_writers unpauses them, finish_change and rebuild-all's exit trap call it.
  PAUSED=()
  # RECOVERING: 1 while recover_change repairs a change cut short; read by finish_change and
  # rebuild-all's exit trap (the journal stays). RECOVERED: what that repair did ("deploy of X
  # undone; blue serves"), set by recover_change; read by rollback.sh.
  RECOVERING=0 RECOVERED=""
  # The scripts' summaries, in milliseconds: T_SWITCHED (switch_and_verify,
  # takeover_and_verify, rollback_to_app), T_VERIFIED (verify_and_commit, rollback_to_app),
  # T_GATE and TOOLS_SUMMARY ("2->1": mcp_gate), T_AUX (update_aux).
  T_SWITCHED=0 T_VERIFIED=0 T_GATE=0 TOOLS_SUMMARY="" T_AUX=0
}
