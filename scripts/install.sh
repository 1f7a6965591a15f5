#!/usr/bin/env bash
# Install the bundle this script came in (scripts/, deploy/, stack.env, MANIFEST) into the
# loopctl home on the NAS, as root, from the folder `inv setup` uploaded it to.
#
# The home must be root's alone: it and every directory above it owned by root and writable
# by nobody else, no symbolic links, not inside the app checkout, and mounted read-write by
# no container. Anything that can write there can make root run it, so any other home is
# refused before anything is written. Each file is written beside its target and renamed
# over it, so a running script keeps its old copy and nobody reads half a file; the deploy
# lock keeps changes out meanwhile. Nothing is written into the app checkout.
set -Eeuo pipefail

usage() {
  cat <<'USAGE'
usage: install.sh HOME APP_DIR

  HOME      the loopctl home on the NAS (NAS_LOOPCTL_DIR), e.g. /volume1/@loopctl
  APP_DIR   the app checkout (NAS_APP_DIR); an old APP_DIR/.loopctl is moved into HOME once
USAGE
}

# The shared base (logging, exit codes, the lock, the safety checks), pointed at the home being
# installed rather than the upload folder this runs from (see lib.sh).
LOOPCTL_INSTALL_HOME=${1%/}
. "${BASH_SOURCE%/*}/lib.sh"

[[ ${1:-} != --help ]] || { usage; exit 0; }
[[ $# -eq 2 && $1 == /?* && $2 == /?* ]] || usage_error
dest=${1%/}
app_dir=${2%/}
src=$(cd "$(dirname "$0")/.." && pwd -P)

[[ -r $src/$MANIFEST_FILE ]] || die "no MANIFEST in $src" "$EXIT_USAGE"
case $dest/ in
  "$app_dir"/*) die "refused: $dest is inside the app checkout $app_dir, which the app container writes" "$EXIT_REFUSED" ;;
esac
case $app_dir/ in
  "$dest"/*) die "refused: the app checkout $app_dir is inside $dest" "$EXIT_REFUSED" ;;
esac
why=$(unsafe_path "$dest")
[[ -z $why ]] || die "refused: $why; the loopctl home and every directory above it must be root's alone (NAS_LOOPCTL_DIR)" "$EXIT_REFUSED"
[[ -d $(dirname "$dest") ]] || die "refused: $(dirname "$dest") does not exist" "$EXIT_REFUSED"

# Docker comes from the bundle's stack.env: the containers' mounts are checked before
# anything is written.
read_env_file "$src/$STACK_ENV_FILE" "${STACK_FIELDS[@]}" ||
  die "the bundle's stack.env is malformed" "$EXIT_USAGE"
[[ -x $DOCKER ]] || die "docker not found at '$DOCKER' (NAS_DOCKER)" "$EXIT_USAGE"
look_at_containers
mounts=$(rw_mounts_of_home)
[[ -z $mounts ]] || die "refused: container $(head -n 1 <<<"$mounts"); no container may write the loopctl home" "$EXIT_REFUSED"

umask 022
[[ -d $dest ]] || mkdir -m 0755 "$dest"

# migration, removed after loopctl 1.0: backups an older loopctl
# copied with `cp -a` may hold what a container left in the OAuth
# folder: links, device nodes, FIFOs, files not root's or writable by others. Such a backup
# made the home unsafe for every later change; it is repaired here, in the backups folder only
# (root's, mode 700, so nobody else could reach it): entries that are not folders or regular
# files are removed (a link or a node holds no data), the rest made root's and writable by root
# alone. Each removed entry is named.
repair_backups() {
  local backups=$dest/$BACKUPS_DIR entry removed=0
  # Only a backups folder nobody else could have swapped for a link since.
  [[ -d $backups && -z $(unsafe_path "$backups") ]] || return 0
  [[ -n $(find "$backups" -mindepth 1 \( ! -type f ! -type d -o ! -user 0 -o ! -group 0 -o -perm /022 \) -print -quit) ]] || return 0
  while IFS= read -r -d '' entry; do
    step "removed $(printable "${entry#"$dest/"}") from the backups: $(stat -c %F "$entry"), not state"
    rm -f -- "$entry"
    removed=$((removed + 1))
  done < <(find "$backups" -mindepth 1 ! -type f ! -type d -print0)
  chown -R 0:0 "$backups"
  chmod -R go-w "$backups"
  chmod 0700 "$backups"
  step "repaired $backups: $removed entries removed, every file root's and writable by root alone"
}
repair_backups

# Checked before anything is created inside (install -d would follow a planted link), and after.
why=$(unsafe_home)
[[ -z $why ]] || die "refused: $why" "$EXIT_REFUSED"
install -d -m 0755 "$dest/$STATE_DIR" "$dest/$STATE_DIR/nginx" "$dest/$RUNS_DIR"
install -d -m 0700 "$dest/$LOCK_DIR" "$dest/$BACKUPS_DIR" "$dest/$RELEASES_DIR" "$dest/$BUILD_DIR"
why=$(unsafe_home)
[[ -z $why ]] || die "refused: $why" "$EXIT_REFUSED"

# A deploy running meanwhile would run half old, half new scripts: the deploy lock keeps it out.
take_lock setup -
trap release_lock EXIT

count=0
while read -r _ path; do
  [[ $path =~ ^[A-Za-z0-9_./-]+$ && $path != *..* ]] || die "bad path in MANIFEST: $path" "$EXIT_USAGE"
  mode=0644
  [[ $path == scripts/*.sh ]] && mode=0755
  install -d -m 0755 "$(dirname "$dest/$path")"
  install -m "$mode" "$src/$path" "$dest/$path.new"
  mv -f "$dest/$path.new" "$dest/$path"
  count=$((count + 1))
done <"$src/$MANIFEST_FILE"
install -m 0644 "$src/$MANIFEST_FILE" "$dest/$MANIFEST_FILE.new"
mv -f "$dest/$MANIFEST_FILE.new" "$dest/$MANIFEST_FILE"
step "installed loopctl $LOOPCTL_VERSION: $count files into $dest"

# migration, removed after loopctl 1.0: an upstream file from
# before the warm standby names none: the nginx.conf just installed
# reads `$loop_standby`, and a proxy restarted before the next deploy must still start.
upstream=$dest/$UPSTREAM_FILE
if [[ -f $upstream && ! -L $upstream ]] && ! grep -q 'loop_standby ' "$upstream"; then
  # shellcheck disable=SC2016  # nginx variables, not shell ones
  { cat "$upstream"; printf '%s\n' 'map $host $loop_standby { default none; }' 'map $host $loop_standby_color { default none; }'; } >"$upstream.new"
  chmod 0644 "$upstream.new"
  mv -f "$upstream.new" "$upstream"
  step "$upstream: no standby (written before the warm standby existed)"
fi

# --- moving an old home out of the app checkout, once -------------------------------------------

# migration, removed after loopctl 1.0: the old home sat in the
# vault the app container writes: its files are data to check, never
# code to run. Releases and audit lines that do not look like loopctl's are left behind.
migrate() {
  local old=$app_dir/.loopctl moved_releases=0 moved_audit=0 moved_backups=0 line file rel
  [[ -d $old/state && ! -L $old && ! -L $old/state && ! -e $dest/$MIGRATED_FILE ]] || return 0
  if [[ -f $old/$RELEASES_FILE && ! -L $old/$RELEASES_FILE ]]; then
    while IFS= read -r line; do
      if LC_ALL=C grep -qE $'^[0-9TZ:-]+\t[a-z-]+\t[0-9a-f]{4,40}\t[A-Za-z0-9_./:-]+\t(blue|green)\t[^\t[:cntrl:]]*$' <<<"$line"; then
        printf '%s\n' "$line" >>"$dest/$RELEASES_FILE.migrated"
        moved_releases=$((moved_releases + 1))
      fi
    done <"$old/$RELEASES_FILE"
  fi
  if [[ -f $old/$AUDIT_FILE && ! -L $old/$AUDIT_FILE ]]; then
    while IFS= read -r line; do
      if [[ ${#line} -le 4096 ]] && bash "$src/scripts/audit-append.sh" --check "$line"; then
        printf '%s\n' "$line" >>"$dest/$AUDIT_FILE.migrated"
        moved_audit=$((moved_audit + 1))
      fi
    done <"$old/$AUDIT_FILE"
  fi
  if [[ -d $old/$BACKUPS_DIR && ! -L $old/$BACKUPS_DIR ]]; then
    while IFS= read -r -d '' file; do
      rel=${file#"$old/$BACKUPS_DIR/"}
      install -d -m 0700 "$(dirname "$dest/$BACKUPS_DIR/$rel")"
      install -m 0600 "$file" "$dest/$BACKUPS_DIR/$rel"
      moved_backups=$((moved_backups + 1))
    done < <(find "$old/$BACKUPS_DIR" -type f -print0)
  fi
  # Older history first, then whatever the new home already has.
  for file in "$RELEASES_FILE" "$AUDIT_FILE"; do
    [[ -f $dest/$file.migrated ]] || continue
    cat "$dest/$file" >>"$dest/$file.migrated" 2>/dev/null || true
    chmod 0644 "$dest/$file.migrated"
    mv -f "$dest/$file.migrated" "$dest/$file"
  done
  printf '%s moved on %s\n' "$old" "$(utc_now)" >"$dest/$MIGRATED_FILE"
  rm -rf "$old"
  step "moved $old into $dest (once): $moved_releases releases, $moved_audit audit records, $moved_backups backup files; $old is removed"
}
migrate
