#!/usr/bin/env bash
# Install the bundle this script came in (scripts/, deploy/, stack.env, MANIFEST) into the
# app's .loopctl directory. Each file is written beside its target and renamed over it, so
# a running script keeps its old copy and nobody reads half a file; the deploy lock keeps
# deploys out meanwhile. Run as root by `inv setup` from its upload folder.
set -Eeuo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-}

die() {
  printf 'ERROR: %s\n' "$1" >&2
  exit "${2:-1}"
}

[[ $# -eq 1 && $dest == /*/.loopctl ]] || die "usage: install.sh APP_DIR/.loopctl" 64
app_dir=$(dirname "$dest")
[[ -d $app_dir ]] || die "$app_dir does not exist on the NAS (NAS_APP_DIR)" 64
[[ -r $src/MANIFEST ]] || die "no MANIFEST in $src" 64

umask 022
mkdir -p "$dest/state/nginx" "$dest/state/runs"
exec 9>>"$dest/state/deploy.lock"
flock -n 9 || die "refused: a deploy is running: $(cat "$dest/state/deploy.lock.info" 2>/dev/null)" 75

count=0
while read -r _ path; do
  mode=0644
  [[ $path == scripts/*.sh ]] && mode=0755
  install -D -m "$mode" "$src/$path" "$dest/$path.new"
  mv -f "$dest/$path.new" "$dest/$path"
  count=$((count + 1))
done <"$src/MANIFEST"
install -m 0644 "$src/MANIFEST" "$dest/MANIFEST.new"
mv -f "$dest/MANIFEST.new" "$dest/MANIFEST"

# Keep the installed files out of the app checkout's `git status`.
exclude=$app_dir/.git/info/exclude
if [[ -d $app_dir/.git/info ]] && ! grep -qxF '/.loopctl/' "$exclude" 2>/dev/null; then
  echo '/.loopctl/' >>"$exclude"
fi
echo "==> installed $count files into $dest"
