#!/usr/bin/env bash
# Build the sandbox's base image without a registry: debootstrap a minimal Debian,
# install the example app's wheels into /opt/venv from a wheelhouse made on this
# machine, and `docker import` the tree. Cached: does nothing if the image exists.
set -Eeuo pipefail

readonly IMAGE=${RIG_BASE_IMAGE:-loop-rig-base:bookworm}
readonly MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HERE=$(cd "$(dirname "$0")" && pwd)
readonly HERE
readonly REQUIREMENTS=$HERE/../example-app/requirements.txt

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "==> base image $IMAGE already present"
  exit 0
fi

work=$(mktemp -d /var/tmp/loop-rig-base.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "==> debootstrap bookworm (python3, nginx, curl) into $work/root"
debootstrap --variant=minbase --include=python3,python3-venv,nginx-light,curl,ca-certificates \
  bookworm "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }

echo "==> wheelhouse for $(basename "$REQUIREMENTS")"
python3 -m pip download -qq --only-binary=:all: --dest "$work/root/wheels" -r "$REQUIREMENTS"
cp "$REQUIREMENTS" "$work/root/wheels/requirements.txt"
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$work/root" "$@"; }
in_root python3 -m venv /opt/venv
in_root /opt/venv/bin/pip install -qq --no-index --find-links /wheels -r /wheels/requirements.txt
rm -rf "$work/root/wheels" "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*

echo "==> docker import $IMAGE"
tar -C "$work/root" -c . | docker import \
  --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "==> $IMAGE ready"
