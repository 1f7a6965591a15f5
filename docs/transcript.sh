#!/usr/bin/env bash
# Capture what the verbs print, on the sandbox NAS, into docs/transcript.md: `inv status`, an
# `inv rebuild` of a one-line commit made in the sandbox's workstation clone of the app,
# `inv rollback`, the end of its run log (`inv run-log --tail 8`) and `inv health`, verbatim but
# for control bytes.
#
# Run as root with the sandbox up (./sandbox.sh, or rig/up.sh), from any folder:
#   docs/transcript.sh
# It holds the sandbox's lock (/tmp/loop-rig.lock) as the tests do, since the sandbox is shared,
# and leaves the workstation clone as the tests expect it: committed, clean and pushed (the
# rebuild's local-sync pushes the commit). The NAS is left rolled back to the release before it.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

LOCK=/tmp/loop-rig.lock
OUT=docs/transcript.md
export LOOP_ENV_FILE=${RIG_STATE:-/var/lib/loop-rig}/nas.env

die() {
  printf 'transcript.sh: %s\n' "$1" >&2
  exit "${2:-1}"
}

# Output from the NAS is untrusted: keep tabs and newlines, drop every other control byte.
printable() { LC_ALL=C tr -d '\000-\010\013-\037\177'; }

# Each command and what it printed (stdout and stderr as they came), to the terminal and $body.
run() {
  local status=0
  printf '$ inv %s\n' "$*" | tee -a "$body"
  .venv/bin/inv "$@" 2>&1 | printable | tee -a "$body" || status=$?
  printf '\n' >>"$body"
  ((status == 0)) || die "inv $* failed (exit $status); $OUT is left as it was"
}

# A one-line change to the example app, committed as rig/sandbox.py's commit_change does.
commit_change() {
  local main=$workstation/api/main.py label
  label="transcript $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  sed -i '/^# release: /d' "$main"
  printf '# release: %s\n' "$label" >>"$main"
  git -C "$workstation" commit -qam "transcript: $label"
}

main() {
  ((EUID == 0)) || die "run it as root: the sandbox's files are root's" 2
  [[ -f $LOOP_ENV_FILE ]] || die "no sandbox here: $LOOP_ENV_FILE is missing (start one with ./sandbox.sh)" 2
  [[ -x .venv/bin/inv ]] || die "no .venv/bin/inv: run ./sandbox.sh first" 2
  workstation=$(sed -n 's/^LOCAL_REPO=//p' "$LOOP_ENV_FILE")
  [[ -d $workstation/.git ]] || die "LOCAL_REPO in $LOOP_ENV_FILE is not a git repository: $workstation" 2

  exec 9>"$LOCK"
  printf '==> waiting for the sandbox lock %s\n' "$LOCK" >&2
  flock 9
  [[ -z $(git -C "$workstation" status --porcelain) ]] ||
    die "the workstation clone $workstation has uncommitted changes: commit or remove them first" 2
  # The NAS must run this checkout's scripts, as the tests' setup makes it: a drifted NAS refuses
  # the rebuild. Its output is not part of the transcript.
  local installed
  installed=$(.venv/bin/inv setup 2>&1) || die "inv setup failed: $(printf '%s\n' "$installed" | printable | tail -n 3)"

  body=$(mktemp)
  trap 'rm -f "$body"' EXIT
  run status
  commit_change
  run rebuild
  run rollback
  run run-log --tail 8
  run health

  # shellcheck disable=SC2016  # the backquotes are Markdown's code marks, not command substitutions
  {
    printf '# Transcript\n\n'
    printf 'What the verbs print, captured on the sandbox NAS on %s by `docs/transcript.sh`\n' "$(date -u +%Y-%m-%d)"
    printf '(as root, with the sandbox up): `inv status`, `inv rebuild` of a one-line commit, `inv rollback`,\n'
    printf 'the end of its run log and `inv health`, verbatim but for control bytes. Run the script again to\n'
    printf 'regenerate it.\n\n'
    printf '```text\n'
    cat "$body"
    printf '```\n'
  } >"$OUT.new"
  mv -f "$OUT.new" "$OUT"
  printf '==> wrote %s\n' "$OUT" >&2
}

main "$@"
