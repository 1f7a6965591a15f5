#!/usr/bin/env bash
# Install everything and run the whole test suite: Debian packages, a virtualenv with the
# pinned requirements, the sandbox NAS (rig/up.sh), then pytest. Run as root on Debian 12.
#
# First the tests that need no sandbox (unit, cli, scripts, checks); then the sandbox's, under
# each Compose Synology ships (rig/compose.sh lays each out):
#   v2 2.40.3 as the docker CLI's plugin   the whole rig suite
#   v1 1.29.2 (Debian's)                    deploy, rollback, rebuild-all, setup, takeover
#   v2 2.20.3 standalone beside docker      deploy, rollback, rebuild-all, takeover (current
#                                           DSM: Container Manager 24, no plugin)
#   v2 2.18.1 as a plugin                   deploy and rollback (the oldest v2 at hand)
# Extra arguments go to pytest instead, e.g. ./test.sh tests/unit -k settings
# (LOOP_TEST_COMPOSE=v1 ./test.sh tests/rig/test_deploy.py runs a part under v1;
# rig/compose.sh standalone-2.20.3 first picks that Compose for the runs that follow).
set -Eeuo pipefail
cd "$(dirname "$0")"

rig/install-packages.sh
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
rig/compose.sh plugin-2.40.3
rig/up.sh
if (($#)); then
  exec .venv/bin/python -m pytest -q "$@"
fi

pytest() { .venv/bin/python -m pytest -q -p no:cacheprovider "$@"; }

echo "==> the tests without the sandbox (unit, cli, scripts, checks)"
pytest tests/unit tests/cli tests/scripts tests/checks
echo "==> Compose v2 2.40.3 (plugin): the whole sandbox suite"
LOOP_TEST_COMPOSE=v2 pytest tests/rig
echo "==> Compose v1 1.29.2: deploy, rollback, rebuild-all, setup, takeover"
# Beside the whole suite under 2.40.3, the other versions run what each Compose does
# differently: build, up and config on a deploy, a rollback, a rebuild-all and a takeover, and
# a rollback after a deploy cut short (so CI stays within its 45 minutes).
core="first_deploy or under_load or rollback or rebuild_all or takeover or keys_survive"
LOOP_TEST_COMPOSE=v1 pytest tests/rig/test_production.py tests/rig/test_deploy.py -k "$core"
rig/compose.sh standalone-2.20.3
echo "==> Compose v2 2.20.3 (standalone, no plugin): deploy, rollback, rebuild-all, takeover"
LOOP_TEST_COMPOSE=v2 pytest tests/rig/test_deploy.py tests/rig/test_production.py tests/rig/test_faults.py -k "$core"
rig/compose.sh plugin-2.18.1
echo "==> Compose v2 2.18.1 (plugin): deploy and rollback"
LOOP_TEST_COMPOSE=v2 pytest tests/rig/test_deploy.py -k "first_deploy or under_load or rollback"
rig/compose.sh plugin-2.40.3
