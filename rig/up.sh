#!/usr/bin/env bash
# Start the sandbox NAS on this machine (idempotent; run as root):
#   - a Docker engine (dockerd, if none answers) and the locally built base image;
#   - OpenSSH on 127.0.0.1:2222 with a pinned host key, user `nas` (sudo asks a password)
#     and user `nasbot` (the least-privilege, passwordless sudoers lines of docs/security.md);
#   - docker only at Synology's path: sshd runs in a mount namespace where the docker
#     binaries on PATH are replaced by a stub, as on a NAS where it is not on PATH;
#   - the app as production holds it: a bare repository standing in for the git host, a
#     workstation clone, and the NAS clone at /volume1/LOOP_CORE/vault/LOOP (production's
#     paths, so loopctl's defaults are what the tests use), with its untracked .env;
#   - Compose v1 (Debian's docker-compose) and one pinned Compose v2 (rig/compose.sh, chosen by
#     RIG_COMPOSE: plugin-2.40.3 by default, standalone-2.20.3 as current DSM lays it out, or
#     plugin-2.18.1, the oldest v2 at hand); the tests pick v1 or v2 with STACK_COMPOSE.
# State (keys, password, logs, the workstation clone) lives in /var/lib/loop-rig (RIG_STATE);
# nas.env and nasbot.env there are settings files for LOOP_ENV_FILE.
set -Eeuo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
readonly HERE
REPO=$(dirname "$HERE")
readonly REPO
readonly STATE=${RIG_STATE:-/var/lib/loop-rig}
readonly SSH_PORT=${RIG_SSH_PORT:-2222}
readonly ROOT=/srv/loop-rig
readonly APP_DIR=/volume1/LOOP_CORE/vault/LOOP
readonly EXEC_VAULT=/volume1/LOOP_CLevel/vault/loop_exec
readonly LOOPCTL_DIR=/volume1/@loopctl
readonly BARE=$ROOT/git/loop-app.git
readonly WORKSTATION=$STATE/workstation/loop-app
readonly SYNOLOGY_DOCKER=/var/packages/ContainerManager/target/usr/bin/docker
readonly BASE_IMAGE=${RIG_BASE_IMAGE:-loop-rig-base:bookworm}

step() { printf '==> %s\n' "$*"; }

[[ $(id -u) == 0 ]] || { echo "rig/up.sh needs root (it adds users, sudoers and sshd)" >&2; exit 1; }
for tool in dockerd docker-compose sshd sudo git debootstrap flock curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run rig/install-packages.sh first" >&2; exit 1; }
done
umask 022
mkdir -p "$STATE" && chmod 700 "$STATE"

start_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  step "starting dockerd (log: $STATE/dockerd.log)"
  setsid dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  tail -20 "$STATE/dockerd.log" >&2
  exit 1
}

add_users() {
  local user
  for user in nas nasbot; do
    id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
  done
  if [[ ! -s $STATE/sudo-password ]]; then
    # Quotes, spaces, $ and # on purpose: the password must survive every layer untouched.
    printf "rig pw'\$(id)\"#%s" "$(openssl rand -hex 8)" >"$STATE/sudo-password"
    chmod 600 "$STATE/sudo-password"
  fi
  printf 'nas:%s\n' "$(cat "$STATE/sudo-password")" | chpasswd
  # nasbot never gets a usable password: it only has the NOPASSWD line below.
  usermod --password '*' nasbot
  local scripts=$LOOPCTL_DIR/scripts
  cat >/etc/sudoers.d/loop-rig <<EOF
# The sandbox NAS. nas: an administrator whose sudo asks for the password.
nas ALL=(ALL:ALL) ALL
# nasbot: the least-privilege, passwordless lines from docs/security.md#passwordless-sudo.
Cmnd_Alias LOOPCTL = $scripts/detach.sh deploy-blue-green *, $scripts/detach.sh rollback *, \\
    $scripts/detach.sh rebuild-all *, $scripts/detach.sh restart *, $scripts/prepare.sh --commit *, \\
    $scripts/facts.sh *, $scripts/audit-append.sh *
nasbot ALL=(root) NOPASSWD: $SYNOLOGY_DOCKER, LOOPCTL
EOF
  chmod 440 /etc/sudoers.d/loop-rig
  visudo -cq
  sudo -u nas git config --global safe.directory '*'
  sudo -u nasbot git config --global safe.directory '*'
}

make_keys() {
  [[ -f $STATE/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C loop-rig-host -f "$STATE/ssh_host_ed25519_key"
  [[ -f $STATE/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C loop-rig-client -f "$STATE/id_ed25519"
  # sshd reads these as the user, so they live outside the private state folder.
  mkdir -p "$ROOT/authorized_keys"
  cp "$STATE/id_ed25519.pub" "$ROOT/authorized_keys/nas"
  cp "$STATE/id_ed25519.pub" "$ROOT/authorized_keys/nasbot"
  printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1,2 "$STATE/ssh_host_ed25519_key.pub")" >"$STATE/known_hosts"
}

install_synology_docker() {
  mkdir -p "$(dirname "$SYNOLOGY_DOCKER")"
  install -m 755 "$(command -v docker)" "$SYNOLOGY_DOCKER"
  printf '#!/bin/sh\necho "docker: command not found (on this NAS it is %s)" >&2\nexit 127\n' \
    "$SYNOLOGY_DOCKER" >"$STATE/docker-not-on-path"
  chmod 755 "$STATE/docker-not-on-path"
}

start_sshd() {
  cat >"$STATE/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $STATE/ssh_host_ed25519_key
PidFile $STATE/sshd.pid
AuthorizedKeysFile $ROOT/authorized_keys/%u
AllowUsers nas nasbot
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM yes
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
  if [[ -s $STATE/sshd.pid ]] && kill -0 "$(cat "$STATE/sshd.pid")" 2>/dev/null; then
    kill "$(cat "$STATE/sshd.pid")"
    sleep 0.3
  fi
  mkdir -p /run/sshd
  /usr/sbin/sshd -t -f "$STATE/sshd_config"
  step "starting sshd on 127.0.0.1:$SSH_PORT (log: $STATE/sshd.log)"
  local hide="" bin
  for bin in /usr/bin/docker /usr/local/bin/docker; do
    [[ -e $bin ]] && hide+="mount --bind $STATE/docker-not-on-path $bin; "
  done
  setsid unshare --mount --propagation private -- sh -c \
    "${hide}exec /usr/sbin/sshd -D -E '$STATE/sshd.log' -f '$STATE/sshd_config'" </dev/null >/dev/null 2>&1 &
  for _ in $(seq 50); do
    ssh-keyscan -p "$SSH_PORT" 127.0.0.1 >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "sshd did not start; see $STATE/sshd.log" >&2
  exit 1
}

seed_repositories() {
  # Production's folders: /volume1 and the shared folders are root's; the checkout is the
  # SSH user's (it runs git there); the exec vault is written by the app container.
  install -d -m 755 /volume1 /volume1/LOOP_CORE /volume1/LOOP_CORE/vault /volume1/LOOP_CLevel \
    /volume1/LOOP_CLevel/vault "$EXEC_VAULT"
  mkdir -p "$(dirname "$BARE")" "$(dirname "$WORKSTATION")"
  if [[ ! -d $BARE ]] || ! git -C "$BARE" cat-file -e HEAD:docker-compose.yml 2>/dev/null; then
    step "seeding the example app into $BARE"
    rm -rf "$BARE" "$WORKSTATION" "$APP_DIR"
    local seed
    seed=$(mktemp -d)
    git init -q --bare --initial-branch=main "$BARE"
    git init -q --initial-branch=main "$seed"
    cp -a "$REPO/example-app/." "$seed/"
    git -C "$seed" add -A
    git -C "$seed" -c user.name=sandbox -c user.email=sandbox@localhost commit -qm "Example LOOP app"
    git -C "$seed" push -q "$BARE" main
    rm -rf "$seed"
  fi
  [[ -d $WORKSTATION/.git ]] || git clone -q "$BARE" "$WORKSTATION"
  git -C "$WORKSTATION" config user.name >/dev/null || git -C "$WORKSTATION" config user.name "sandbox user"
  git -C "$WORKSTATION" config user.email >/dev/null || git -C "$WORKSTATION" config user.email sandbox@localhost
  if [[ ! -d $APP_DIR/.git ]]; then
    rm -rf "$APP_DIR"
    git clone -q "$BARE" "$APP_DIR"
    # Production keeps its settings in the checkout's untracked .env; here the base image
    # (no registry) is one of them.
    printf 'LOOP_BASE_IMAGE=%s\n' "$BASE_IMAGE" >"$APP_DIR/.env"
    chown -R nas:nas "$APP_DIR"
  fi
}

write_env_files() {
  local password
  password=$(sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" "$STATE/sudo-password")
  cat >"$STATE/common.env" <<EOF
NAS_HOST=127.0.0.1
NAS_PORT=$SSH_PORT
NAS_SSH_KEY=$STATE/id_ed25519
NAS_KNOWN_HOSTS=$STATE/known_hosts
NAS_DOCKER=$SYNOLOGY_DOCKER
DEPLOY_VERIFY_SECONDS=2
STACK_PROXY_IMAGE=$BASE_IMAGE
LOCAL_REPO=$WORKSTATION
PUBLIC_URL=http://127.0.0.1:8082
JWKS_URL=http://127.0.0.1:8084/.well-known/jwks.json
AUDIT_LOG=$STATE/audit.jsonl
HEALTH_STATE_FILE=$STATE/health-state.json
EOF
  { cat "$STATE/common.env"; echo "NAS_USER=nas"; echo "NAS_SUDO_PASSWORD='$password'"; } >"$STATE/nas.env"
  { cat "$STATE/common.env"; echo "NAS_USER=nasbot"; } >"$STATE/nasbot.env"
  chmod 600 "$STATE"/*.env
}

start_docker
"$HERE/build-base-image.sh"
add_users
make_keys
install_synology_docker
"$HERE/compose.sh" "${RIG_COMPOSE:-$(cat "$STATE/compose" 2>/dev/null || echo plugin-2.40.3)}"
start_sshd
seed_repositories
write_env_files
step "sandbox NAS ready: LOOP_ENV_FILE=$STATE/nas.env inv status"
