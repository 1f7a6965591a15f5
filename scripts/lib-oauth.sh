# shellcheck shell=bash
# Where the OAuth state (keys/, oauth.db) lives, and how root copies what containers wrote.
# Sourced by lib-change.sh, never run.
#
# The app's compose mounts its OAuth folder from inside the checkout (./api/oauth), which the
# api container writes: it can replace that folder, or one above it, with a link to /, and
# Docker follows links in a bind source at every start, its restart policy's included. So
# loopctl's stack mounts a named volume there instead (the release's OAUTH_VOLUME): its path is
# Docker's, out of every container's reach. The state moves into it whenever loopctl takes the
# port from the app's own container (whose folder then holds the current state), after a
# backup; a rollback to the app's own container copies it back, after a backup of the folder.
#
# Root never opens what a container wrote: every read and write of container-writable state
# happens inside a throwaway container (links resolve inside it, device nodes cannot be
# opened, a FIFO blocks only it and its time bound ends it). A folder inside the checkout is
# reached from the checkout itself, which no container can replace (it is their mount point):
# the throwaway mounts the checkout and enters the folder refusing any link on the way, so what
# it reads or writes is that folder whatever a container did to its path. Writers are paused
# for a copy, so it is consistent. Copies travel as tar archives, bounded in size and checked
# entry by entry: only folders and regular files pass.

# Plenty for keys and a token database; a folder grown past it is refused, never copied half.
readonly STATE_MAX_BYTES=$((256 * 1024 * 1024))
readonly THROWAWAY_SECONDS=120
OAUTH_MOVED=$LOOPCTL_HOME/$OAUTH_MOVED_FILE
readonly OAUTH_MOVED
# PAUSED: the containers pause_writers paused (declared with the state of a change, lib-change.sh).

# The sha256sum lines of every regular file under the working folder, sorted by name: the one
# form both a backup's SHA256SUMS and the checks of a copy use.
readonly SUMS='find . -type f ! -path ./SHA256SUMS -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum'

# throwaway IMAGE MOUNT... -- SCRIPT [ARGS...]: `sh -c SCRIPT` in a container of IMAGE that has
# only those mounts: no network, no capability beyond owning files, no privilege gain, a time
# bound. stdin and stdout are passed through.
throwaway() {
  local image=$1
  local -a mounts=()
  shift
  while [[ $1 != -- ]]; do
    mounts+=(-v "$1")
    shift
  done
  shift
  timeout --kill-after=5 "$THROWAWAY_SECONDS" "$DOCKER" run --rm -i --network none --user 0:0 \
    --cap-drop ALL --cap-add CHOWN --cap-add DAC_OVERRIDE --cap-add FOWNER --security-opt no-new-privileges \
    --label org.loopctl.role=copy "${mounts[@]}" --entrypoint sh "$image" -c "$@" 9>&-
}

# pause_writers PATH|VOLUME: freeze every running container that mounts the volume, or PATH, a
# folder above it or one inside it read-write, so that while loopctl checks and mounts it nobody
# can swap it for a link, and a copy of it is consistent. Docker's pause is the cgroup freezer:
# instant, and requests wait instead of failing. The journal keeps them (recover_change resumes
# them after a kill).
pause_writers() {
  local ids id left
  ids=$(docker ps -q)
  [[ -n $ids ]] || return 0
  # shellcheck disable=SC2086  # one id per word
  for id in $(writers_of "$1" $ids); do
    PAUSED+=("$id")
    journal_set paused "$(IFS=,; echo "${PAUSED[*]}")"
    docker pause "$id" >/dev/null 2>&1 || true
  done
  # A writer that could not be paused (restarting, say) would run on: refused, not raced.
  # shellcheck disable=SC2046  # one id per word
  left=$(writers_of "$1" $(docker ps -q --filter status=running))
  if [[ -n $left ]]; then
    resume_writers
    # shellcheck disable=SC2086  # one id per word
    die "a container that writes $1 could not be paused ($(docker inspect -f '{{.Name}}' $left 2>/dev/null | tr -d / | tr '\n' ' ')): nothing copied; try again" "$EXIT_FAILED"
  fi
}

# writers_of PATH|VOLUME ID...: those of the containers that mount the volume, or PATH, a folder
# above it or one inside it read-write.
writers_of() {
  local target=$1
  shift
  (($#)) || return 0
  docker inspect --format '{{.Id}}{{range .Mounts}}{{"\t"}}{{.Source}}{{"\x1f"}}{{.RW}}{{"\x1f"}}{{index . "Name"}}{{end}}' "$@" |
    awk -F'\t' -v path="$target" '
      { for (i = 2; i <= NF; i++) {
          split($i, m, "\037")
          if (m[3] == path || (m[2] == "true" && (m[1] == path || index(path "/", m[1] "/") == 1 || index(m[1], path "/") == 1))) {
            print $1; break
          }
        } }'
}

resume_writers() {
  ((${#PAUSED[@]})) || return 0
  docker unpause "${PAUSED[@]}" >/dev/null 2>&1 || true
  PAUSED=()
  journal_set paused ""
}

# with_paused PATH|VOLUME COMMAND...: COMMAND (in a subshell) with the writers of PATH paused;
# they run again whatever COMMAND did, and its failure (its own one-line error) is this script's.
with_paused() {
  local target=$1 status=0
  shift
  pause_writers "$target"
  ("$@") || status=$?
  resume_writers
  ((status == 0)) || exit "$status"
}

# folder_mount DIR: the mount and the path inside it through which a throwaway reaches DIR: the
# checkout mounted at /c and DIR relative to it (a container can swap DIR's path, never the
# checkout), else DIR's own folder above it. Sets FOLDER_MOUNT and FOLDER_PATH.
folder_mount() {
  local root=$APP_DIR
  [[ $1 == "$root"/* ]] || root=$(dirname "$1")
  [[ -d $root ]] || die "$root is not a folder: nothing copied" "$EXIT_REFUSED"
  check_bind_sources "$root"
  FOLDER_MOUNT=$root:/c FOLDER_PATH=/c/${1#"$root"/}
}

# The shell line a throwaway enters FOLDER_PATH with ($1: the path; creates it when asked),
# refusing a link anywhere on the way (exit 3).
# shellcheck disable=SC2016  # expanded by the throwaway's sh
readonly ENTER='dir=$1; [ -z "$2" ] || mkdir -p "$dir"; cd -P "$dir" 2>/dev/null && [ "$(pwd -P)" = "$dir" ] || exit 3'

# --- archives ---------------------------------------------------------------------------------

# archive_problem TAR: the first entry that is not a folder or a regular file (a hard link to
# one in the archive is one), or that climbs out with `..`; nothing when all pass.
archive_problem() {
  tar -tvf "$1" 2>/dev/null | LC_ALL=C awk '
    { type = substr($1, 1, 1); name = $0; for (k = 0; k < 5; k++) sub(/^[^ ]+ +/, "", name) }
    type != "-" && type != "d" && type != "h" { print "a " (type == "l" ? "link" : "special file") " (" name ")"; exit }
    name ~ /(^|\/)\.\.(\/|$)/ { print "a name with .. (" name ")"; exit }' | LC_ALL=C tr -d '\000-\037\177' | cut -c 1-200
  [[ ${PIPESTATUS[0]} == 0 ]] || echo "an unreadable archive"
}

# bounded_archive WHAT OUT COMMAND...: COMMAND's stdout (a tar) into OUT, at most
# STATE_MAX_BYTES, and only folders and regular files in it; dies with one line otherwise.
bounded_archive() {
  local what=$1 out=$2 problem status=0
  shift 2
  "$@" | head -c $((STATE_MAX_BYTES + 1)) >"$out" || status=${PIPESTATUS[0]}
  (($(stat -c %s "$out") <= STATE_MAX_BYTES)) ||
    die "$what holds more than $((STATE_MAX_BYTES / 1048576)) MiB: refused, nothing copied" "$EXIT_REFUSED"
  ((status != 3)) || die "$what is not a plain folder (a link on its way, or missing): refused, nothing copied" "$EXIT_REFUSED"
  ((status == 0)) || disk_full_or_die "could not read $what (it failed or took over ${THROWAWAY_SECONDS}s): nothing copied" "$out"
  problem=$(archive_problem "$out")
  [[ -z $problem ]] || die "$what holds $problem: refused, nothing copied (only folders and regular files are state)" "$EXIT_REFUSED"
}

# volume_archive VOLUME IMAGE OUT: the volume's content as a checked archive.
volume_archive() {
  bounded_archive "the volume $1" "$3" throwaway "$2" "$1:/from:ro" -- 'cd /from && tar -c -f - .'
}

# folder_archive DIR IMAGE OUT: a folder containers write, as a checked archive (called with its
# writers paused, for a consistent copy: with_paused DIR folder_archive ...).
folder_archive() {
  local dir=$1 image=$2 out=$3
  folder_mount "$dir"
  bounded_archive "$dir" "$out" throwaway "$image" "$FOLDER_MOUNT:ro" -- "$ENTER"' && tar -c -f - .' sh "$FOLDER_PATH" ""
}

# archive_sums TAR: sha256sum lines of the archive's regular files, sorted by name, read inside
# a throwaway container (its names are the app's).
archive_sums() {
  throwaway "$2" -- "mkdir /tmp/s && cd /tmp/s && tar -x -f - && $SUMS" <"$1"
}

# archive_to_backup TAR DEST IMAGE: a backup root reads and writes alone: folders 700 and files
# 600, root's, whoever owned them before; SHA256SUMS in it, checked against the archive.
archive_to_backup() {
  local tar=$1 dest=$2
  if ! (umask 077 && tar -x --no-same-owner --no-same-permissions -f "$tar" -C "$dest" 2>/dev/null); then
    rm -rf "$dest"
    disk_full_or_die "could not write the backup $dest" "$(dirname "$dest")"
  fi
  # tar keeps the archive's own mode on the top folder: root's alone again.
  chmod 0700 "$dest"
  (cd "$dest" && eval "$SUMS") >"$dest.SHA256SUMS"
  mv "$dest.SHA256SUMS" "$dest/SHA256SUMS"
  chmod 0600 "$dest/SHA256SUMS"
  [[ $(cat "$dest/SHA256SUMS") == "$(archive_sums "$tar" "$3")" ]] || die "the backup in $dest does not match what was read: nothing deleted"
}

# archive_to_volume TAR VOLUME IMAGE: the volume's content replaced by the archive (owners and
# modes as archived, so the app reads its keys as before), then checked file by file.
archive_to_volume() {
  local tar=$1 volume=$2 image=$3 want got
  throwaway "$image" "$volume:/to" -- 'find /to -mindepth 1 -delete && tar -x -p -f - -C /to' <"$tar" ||
    die "could not write the OAuth state into the volume $volume"
  want=$(archive_sums "$tar" "$image")
  got=$(throwaway "$image" "$volume:/to:ro" -- "cd /to && $SUMS" </dev/null)
  [[ $want == "$got" ]] || die "the OAuth state in the volume $volume does not match what was copied"
}

# archive_to_folder TAR DIR IMAGE: a folder containers write (made if missing) gets the
# archive's content (called with its writers paused).
archive_to_folder() {
  local tar=$1 dir=$2 image=$3 status=0
  folder_mount "$dir"
  throwaway "$image" "$FOLDER_MOUNT" -- "$ENTER"' && find . -mindepth 1 -delete && tar -x -p -f -' sh "$FOLDER_PATH" mkdir <"$tar" ||
    status=$?
  ((status != 3)) || die "$dir is not a plain folder (a link on its way): the OAuth state was not copied back" "$EXIT_REFUSED"
  ((status == 0)) || die "could not copy the OAuth state back into $dir"
}

# --- the moves ----------------------------------------------------------------------------------

# oauth_work: a new folder for the archives of one copy, in the build folder (root's alone, never
# in a backup); what a killed copy left there is removed first.
oauth_work() {
  install -d -m 0700 "$BUILD"
  rm -rf "$BUILD"/oauth-work.*
  mktemp -d "$BUILD/oauth-work.XXXXXX"
}

# backup_path [WHAT]: a new, empty backup folder (root's, 700), named by the time.
backup_path() {
  local name
  name=$LOOPCTL_HOME/$BACKUPS_DIR/oauth-$(date -u +%Y%m%dT%H%M%SZ)${1:+-$1}
  install -d -m 0700 "$LOOPCTL_HOME/$BACKUPS_DIR"
  [[ ! -e $name ]] || name=$(mktemp -d "$name.XXXX")
  install -d -m 0700 "$name"
  echo "$name"
}

# volume_is_empty VOLUME IMAGE (a failure to look is a failure, never "empty")
volume_is_empty() {
  local listed
  listed=$(throwaway "$2" "$1:/from:ro" -- 'ls -A /from' </dev/null) || die "could not look into the volume $1"
  [[ -z $listed ]]
}

# backup_volume VOLUME IMAGE [WHAT]: a checked backup of the volume's content (its writers
# paused while it is read); prints the backup's folder. An empty volume backs up nothing and
# says so there (with WHAT, an empty volume prints nothing and leaves no folder).
backup_volume() {
  local volume=$1 image=$2 what=${3:-} dest work
  if volume_is_empty "$volume" "$image"; then
    [[ -z $what ]] || return 0
    dest=$(backup_path)
    echo "no OAuth keys or database in the volume $volume yet: nothing to back up" >"$dest/EMPTY"
    echo "$dest"
    return
  fi
  work=$(oauth_work)
  with_paused "$volume" volume_archive "$volume" "$image" "$work/volume.tar"
  dest=$(backup_path "$what")
  archive_to_backup "$work/volume.tar" "$dest" "$image"
  rm -rf "$work"
  echo "$dest"
}

# move_oauth_in first|always: the loaded release keeps its OAuth state in OAUTH_VOLUME. The
# first time (or always: when a container that mounts the app's folder served until now), the
# app's folder OAUTH_FROM is backed up and copied into it; what the volume held is backed up
# first, and the containers that mount the volume are restarted on the new files. The folder
# itself is left as it was.
move_oauth_in() {
  local image=$API_REPO:$SHORT work backup held
  [[ -n ${OAUTH_VOLUME:-} && -n ${OAUTH_FROM:-} ]] || return 0
  if [[ $1 == first && -s $OAUTH_MOVED ]]; then
    require_oauth_volume
    return 0
  fi
  docker volume inspect "$OAUTH_VOLUME" >/dev/null 2>&1 ||
    docker volume create --label "com.docker.compose.project=$PROJECT" "$OAUTH_VOLUME" >/dev/null
  held=$(backup_volume "$OAUTH_VOLUME" "$image" volume)
  [[ -z $held ]] || step "backed up what the volume $OAUTH_VOLUME held to $held"
  if [[ ! -e $OAUTH_FROM ]]; then
    step "no OAuth folder at $OAUTH_FROM yet: $OAUTH_VOLUME starts empty (loop-auth makes new keys)"
  else
    work=$(oauth_work)
    with_paused "$OAUTH_FROM" folder_archive "$OAUTH_FROM" "$image" "$work/folder.tar"
    backup=$(backup_path)
    archive_to_backup "$work/folder.tar" "$backup" "$image"
    with_paused "$OAUTH_VOLUME" archive_to_volume "$work/folder.tar" "$OAUTH_VOLUME" "$image"
    rm -rf "$work"
    step "OAuth state copied from $OAUTH_FROM into the volume $OAUTH_VOLUME (backup: $backup; the folder is left as it was)"
    # What ran on the files just replaced may hold them open: it starts again on the new ones.
    [[ -z $held ]] || restart_mounting "$OAUTH_VOLUME"
  fi
  printf 'volume=%s\nfrom=%s\nat=%s\n' "$OAUTH_VOLUME" "$OAUTH_FROM" "$(utc_now)" >"$OAUTH_MOVED.new"
  mv -f "$OAUTH_MOVED.new" "$OAUTH_MOVED"
}

# require_oauth_volume: once the state moved, its volume must be there: Docker would make an
# empty one, and the keys ChatGPT signs in with would be new.
require_oauth_volume() {
  [[ -s $OAUTH_MOVED && -n ${OAUTH_VOLUME:-} ]] || return 0
  docker volume inspect "$OAUTH_VOLUME" >/dev/null 2>&1 && return 0
  die "the OAuth state was moved into the volume $OAUTH_VOLUME ($(tr '\n' ' ' <"$OAUTH_MOVED")), which is gone: restore it from $LOOPCTL_HOME/$BACKUPS_DIR (docs/deploys.md#restoring-oauth-keys), or remove $OAUTH_MOVED to copy $OAUTH_FROM again" "$EXIT_REFUSED"
}

# restart_mounting VOLUME: the running containers that mount it, restarted.
restart_mounting() {
  local ids
  ids=$(docker ps -q --filter "volume=$1")
  [[ -z $ids ]] || { step "restarting what mounts $1 on the copied state"; echo "$ids" | xargs docker restart -t 5 >/dev/null; }
}

# move_oauth_out: back to the app's own container, whose compose mounts OAUTH_FROM: the folder
# is backed up, then gets the volume's state (the folder is made if a container removed it).
move_oauth_out() {
  local image=$API_REPO:$SHORT work backup=none
  [[ -n ${OAUTH_VOLUME:-} && -n ${OAUTH_FROM:-} ]] || return 0
  docker volume inspect "$OAUTH_VOLUME" >/dev/null 2>&1 || return 0
  work=$(oauth_work)
  if [[ -e $OAUTH_FROM || -L $OAUTH_FROM ]]; then
    with_paused "$OAUTH_FROM" folder_archive "$OAUTH_FROM" "$image" "$work/folder.tar"
    backup=$(backup_path folder)
    archive_to_backup "$work/folder.tar" "$backup" "$image"
  fi
  with_paused "$OAUTH_VOLUME" volume_archive "$OAUTH_VOLUME" "$image" "$work/volume.tar"
  with_paused "$OAUTH_FROM" archive_to_folder "$work/volume.tar" "$OAUTH_FROM" "$image"
  rm -rf "$work"
  step "OAuth state copied from the volume $OAUTH_VOLUME back into $OAUTH_FROM (its old content: $backup)"
}

# migration, removed after loopctl 1.0: keeps_oauth_in_checkout SHORT|CONTAINER
# (and its callers): that release's definition, or that container (made by a loopctl from
# before the volume), mounts the OAuth folder from the checkout while the state
# has moved into the volume: it would serve state that stopped changing.
keeps_oauth_in_checkout() {
  local env
  [[ -s $OAUTH_MOVED ]] || return 1
  env=$(release_dir "$1")/$RELEASE_ENV_FILE
  if [[ $1 =~ ^[0-9a-f]{12}$ ]]; then
    grep -q '^OAUTH_DIR=.' "$env" 2>/dev/null && ! grep -q '^OAUTH_VOLUME=.' "$env"
  else
    docker inspect -f '{{range .Mounts}}{{.Source}}{{"\n"}}{{end}}' "$1" 2>/dev/null |
      grep -qxF "$(sed -n 's/^from=//p' "$OAUTH_MOVED")"
  fi
}

# refuse_stale_layout SHORT [CONTAINER]: a rollback does not start such a release or container.
refuse_stale_layout() {
  keeps_oauth_in_checkout "$1" || { [[ -n ${2:-} ]] && keeps_oauth_in_checkout "$2"; } || return 0
  die "release $1 mounts the OAuth folder from the checkout (an older loopctl defined it), but the OAuth state now lives in the volume named in $OAUTH_MOVED: check out $1 and deploy it again with 'inv rebuild --no-sync'" "$EXIT_REFUSED"
}

# empty_volume VOLUME IMAGE: everything in it deleted (after backup_volume).
empty_volume() {
  throwaway "$2" "$1:/to" -- 'find /to -mindepth 1 -delete' </dev/null || die "could not empty the volume $1"
}
