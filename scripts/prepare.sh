#!/usr/bin/env bash
# First half of a deploy, run by `inv rebuild` before the detached part: export the commit
# from the app checkout and resolve the app's own compose file with Compose itself, so that
# loopctl (on the workstation) can write the release's stack definition from it.
#
# Prints three lines: `compose: 1|2`, `raw: BASE64` (the compose file as committed) and
# `resolved: BASE64` (`compose config` of it, relative paths against the checkout, variables
# from the checkout's .env as the app's own `docker compose up` would). The resolved text
# holds the app's environment: it goes to the workstation over SSH, never to a log.
set -Eeuo pipefail

# shellcheck source=lib-deploy.sh
. "$(dirname "$0")/lib-deploy.sh"

usage() {
  cat <<USAGE
usage: prepare.sh --commit SHA

  --commit SHA   full commit id to export and resolve (required)
  --help         this text

Exit: 0 printed; $EXIT_USAGE bad usage or an invalid compose file; $EXIT_LOCKED a change holds the lock;
$EXIT_REFUSED the checkout's .env is a link; $EXIT_DISK_FULL disk full.
USAGE
}

main() {
  local commit="" file errors
  while (($#)); do
    case $1 in
      --help | -h) usage; exit 0 ;;
      --commit) [[ $# -ge 2 ]] || usage_error; commit=$2; shift 2 ;;
      *) usage_error ;;
    esac
  done
  [[ $commit =~ ^[0-9a-f]{40}$ ]] || usage_error
  load_stack_env
  take_lock prepare "${commit:0:12}"
  trap release_lock EXIT
  export_commit "$commit"
  file=$BUILD/src/$APP_COMPOSE_FILE
  [[ -f $file && ! -L $file ]] || die "$APP_COMPOSE_FILE is not a file in commit ${commit:0:12} (APP_COMPOSE_FILE)" "$EXIT_USAGE"
  # Compose reads the checkout's .env as root, and the app can write there: a link would let it
  # choose which root-only file Compose reads.
  [[ ! -L $APP_DIR/.env ]] || die "$APP_DIR/.env is a symbolic link: refused (it must be a plain file)" "$EXIT_REFUSED"
  errors=$(mktemp)
  # Bounded: a .env the app turned into a FIFO must not hold the lock forever.
  if ! resolved=$(cd "$APP_DIR" && timeout 60 "${COMPOSE[@]}" --project-directory "$APP_DIR" -f "$file" config 2>"$errors"); then
    die "the app's compose file $APP_COMPOSE_FILE is invalid: $(without_compose_noise <"$errors" | grep -v '^ *$' | tail -n 1 | cut -c 1-300)" "$EXIT_USAGE"
  fi
  rm -f "$errors"
  printf 'compose: %s\n' "$COMPOSE_MAJOR"
  printf 'raw: %s\n' "$(base64 -w 0 <"$file")"
  printf 'resolved: %s\n' "$(base64 -w 0 <<<"$resolved")"
}

main "$@"
