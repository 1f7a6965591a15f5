#!/usr/bin/env bash
# Install everything and run the whole test suite: Debian packages, a virtualenv with the
# pinned requirements, the sandbox NAS (rig/up.sh), then pytest. Run as root on Debian 12.
# The sandbox NAS has Compose v1 and v2: the whole suite runs with v2 (what Synology ships),
# then the deploy, rollback, rebuild-all, setup and takeover tests run again with v1.
# Extra arguments go to pytest instead, e.g. ./test.sh tests/unit -k settings
# (LOOP_TEST_COMPOSE=v1 ./test.sh tests/rig/test_deploy.py runs a part under v1).
set -Eeuo pipefail
cd "$(dirname "$0")"

rig/install-packages.sh
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
rig/up.sh
if (($#)); then
  exec .venv/bin/python -m pytest -q "$@"
fi
LOOP_TEST_COMPOSE=v2 .venv/bin/python -m pytest -q tests
echo "==> again under Compose v1: deploy, rollback, rebuild-all, setup, takeover"
LOOP_TEST_COMPOSE=v1 .venv/bin/python -m pytest -q tests/rig/test_deploy.py tests/rig/test_production.py \
  tests/rig/test_sync.py
