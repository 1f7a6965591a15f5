#!/usr/bin/env bash
# First half of a deploy, run by `inv rebuild` before the detached part: export the commit
# from the app checkout and resolve the app's own compose file with Compose itself, so that
# loopctl (on the workstation) can write the release's stack definition from it.
#
# Compose reads only the commit: the project folder is the export, so `include:`, `extends:`
# bases, `env_file:` and build contexts come from the commit's files, never from the checkout
# the app container writes. The one thing taken from the checkout is its untracked `.env`, for
# the app's variables as its own `docker compose up` would take them: read without following a
# link, blocking on a FIFO or opening a device, at most 64 KiB, without Compose's and Docker's
# own settings (COMPOSE_*, DOCKER_*, BUILDKIT_*).
#
# Prints four lines: `compose: 1|2`, `raw: BASE64` (the compose file as committed),
# `resolved: BASE64` (`compose config`: relative paths against the export, variables from the
# checkout's .env) and `literal: BASE64` (the same without variables substituted, which tells
# loopctl what a variable decides). The resolved text holds the app's environment: it goes to
# the workstation over SSH, never to a log.
set -Eeuo pipefail

. "${BASH_SOURCE%/*}/lib.sh"
. "${BASH_SOURCE%/*}/lib-deploy.sh"

usage() {
  cat <<USAGE
usage: prepare.sh --commit SHA

  --commit SHA   full commit id to export and resolve (required)
  --help         this text

Exit: 0 printed; $EXIT_USAGE bad usage or an invalid compose file; $EXIT_LOCKED a change holds the lock;
$EXIT_REFUSED the checkout's .env is not a plain file; $EXIT_DISK_FULL disk full.
USAGE
}

readonly ENV_MAX_BYTES=65536

# checkout_env OUT: the checkout's .env into OUT (root's alone), read in a private mount
# namespace where the checkout is read-only and device nodes cannot be opened, with no link
# followed and no wait on a FIFO; an absent .env is an empty one.
checkout_env() {
  local out=$1 env=$APP_DIR/.env
  : >"$out"
  chmod 0600 "$out"
  [[ -e $env || -L $env ]] || return 0
  [[ -f $env && ! -L $env ]] || die "$env is not a plain file (a link, FIFO or device): refused" "$EXIT_REFUSED"
  # shellcheck disable=SC2016  # expanded by the inner sh
  if ! timeout 10 unshare --mount --propagation private -- sh -c \
    'mount --bind "$1" "$1" && mount -o remount,bind,ro,nodev,nosuid "$1" &&
     exec dd if="$1/.env" iflag=nofollow,nonblock,fullblock bs="$2" count=1 status=none' \
    sh "$APP_DIR" "$((ENV_MAX_BYTES + 1))" 9>&- >"$out.raw" 2>"$out.err"; then
    rm -f "$out.raw"
    die "$env could not be read: $(printable "$(tail -n 1 "$out.err")"): refused" "$EXIT_REFUSED"
  fi
  rm -f "$out.err"
  (($(stat -c %s "$out.raw") <= ENV_MAX_BYTES)) ||
    { rm -f "$out.raw"; die "$env is larger than $((ENV_MAX_BYTES / 1024)) KiB: refused" "$EXIT_REFUSED"; }
  LC_ALL=C tr -d '\000' <"$out.raw" |
    grep -Ev '^[[:space:]]*(export[[:space:]]+)?(COMPOSE_|DOCKER_|BUILDKIT_)' >"$out" || true
  rm -f "$out.raw"
}

# compose_config OUT WHAT FLAGS...: `config` of the committed file with the export as the project
# folder, in a private mount namespace where the checkout is an empty folder: a committed file
# that names a path in the checkout (an absolute include, extends or env_file) finds nothing
# there, so Compose reads nothing the app container wrote. The error becomes one line.
compose_config() {
  local out=$1 what=$2 errors
  shift 2
  errors=$(mktemp)
  # Bounded: nothing Compose reads should take long.
  # shellcheck disable=SC2016  # expanded by the inner sh
  if ! (cd "$SRC" && timeout 60 unshare --mount --propagation private -- sh -c \
    'mount -t tmpfs -o ro,size=4k,mode=0755 loopctl-hidden "$1" && shift && exec "$@"' sh "$APP_DIR" \
    "${COMPOSE[@]}" --project-directory "$SRC" --env-file "$ENV_COPY" -f "$SRC/$APP_COMPOSE_FILE" config "$@" \
    >"$out" 2>"$errors" 9>&-); then
    local why
    why=$(without_compose_noise <"$errors" | grep -v '^ *$' | tail -n 1 | cut -c 1-300)
    rm -f "$errors" "$out"
    die "the app's compose file $APP_COMPOSE_FILE $what: $why" "$EXIT_USAGE"
  fi
  rm -f "$errors"
}

main() {
  local commit="" file work
  while (($#)); do
    case $1 in
      --help | -h) usage; exit 0 ;;
      --commit) [[ $# -ge 2 ]] || usage_error; commit=$2; shift 2 ;;
      *) usage_error ;;
    esac
  done
  [[ $commit =~ ^[0-9a-f]{40}$ ]] || usage_error
  load_stack_env
  need_compose
  take_lock prepare "${commit:0:12}"
  trap release_lock EXIT
  install -d -m 0700 "$BUILD"
  work=$(mktemp -d "$BUILD/prepare.XXXXXX")
  # shellcheck disable=SC2064  # the folder is known now
  trap "rm -rf '$work'; release_lock" EXIT
  export_commit "$commit"
  SRC=$(export_dir) ENV_COPY=$work/app.env
  file=$SRC/$APP_COMPOSE_FILE
  [[ -f $file && ! -L $file ]] || die "$APP_COMPOSE_FILE is not a file in commit ${commit:0:12} (APP_COMPOSE_FILE)" "$EXIT_USAGE"
  checkout_env "$ENV_COPY"
  compose_config "$work/resolved" "is invalid"
  # Where a setting of a fixed type (a port, a switch such as privileged) takes a variable, the
  # model without variables does not validate: that is a host setting taken from the checkout's
  # .env, refused as such.
  compose_config "$work/literal" "takes a setting of a fixed type from a variable (host settings must be written out)" \
    --no-interpolate
  printf 'compose: %s\n' "$COMPOSE_MAJOR"
  printf 'raw: %s\n' "$(base64 -w 0 <"$file")"
  printf 'resolved: %s\n' "$(base64 -w 0 <"$work/resolved")"
  printf 'literal: %s\n' "$(base64 -w 0 <"$work/literal")"
}

main "$@"
