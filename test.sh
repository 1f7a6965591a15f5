#!/usr/bin/env bash
# Install everything and run the whole test suite: Debian packages, a virtualenv with the
# pinned requirements, the sandbox NAS (rig/up.sh), then pytest. Run as root on Debian 12.
# Extra arguments go to pytest, e.g. ./test.sh tests/unit -k settings
set -Eeuo pipefail
cd "$(dirname "$0")"

rig/install-packages.sh
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
rig/up.sh
exec .venv/bin/python -m pytest -q "${@:-tests}"
