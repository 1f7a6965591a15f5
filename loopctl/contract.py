"""The contract with the NAS scripts: exit codes, state file names and flag defaults.

Why a file both sides read: the names and numbers the scripts use on the NAS and the
ones Python uses here must agree, and a copy on each side of the SSH boundary drifts.
`scripts/contract.env` is the one home of each; bash sources it, this module parses it
(plain NAME=value lines), and `tests/scripts/test_contract.py` checks the scripts use it.
"""

from __future__ import annotations

import re
from pathlib import Path

CONTRACT_FILE = Path(__file__).resolve().parent.parent / "scripts" / "contract.env"


def parse(text: str) -> dict[str, str]:
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(?:([A-Za-z0-9_./:@,+-]*)|'([^'\n]*)')", line)
        if not match:
            raise ValueError(f"{CONTRACT_FILE}:{number}: not a plain NAME=value line: {line!r}")
        values[match.group(1)] = match.group(2) if match.group(3) is None else match.group(3)
    return values


VALUES = parse(CONTRACT_FILE.read_text())

# Exit codes of the NAS scripts.
EXIT_FAILED = int(VALUES["EXIT_FAILED"])
EXIT_USAGE = int(VALUES["EXIT_USAGE"])
EXIT_NOTHING_TO_ROLL_BACK = int(VALUES["EXIT_NOTHING_TO_ROLL_BACK"])
EXIT_REFUSED = int(VALUES["EXIT_REFUSED"])
EXIT_LOCKED = int(VALUES["EXIT_LOCKED"])
EXIT_DISK_FULL = int(VALUES["EXIT_DISK_FULL"])
EXIT_STILL_RUNNING = int(VALUES["EXIT_STILL_RUNNING"])

# How the change scripts mark their lines: steps, warnings, errors are shown by default; the
# summary's KEY=VALUE fields are read, never shown (runlog.py).
STEP_PREFIX = VALUES["STEP_PREFIX"]
WARNING_PREFIX = VALUES["WARNING_PREFIX"]
ERROR_PREFIX = VALUES["ERROR_PREFIX"]
SUMMARY_PREFIX = VALUES["SUMMARY_PREFIX"]

# Where things live, relative to NAS_LOOPCTL_DIR.
SCRIPTS_DIR = VALUES["SCRIPTS_DIR"]
STACK_ENV_FILE = VALUES["STACK_ENV_FILE"]
MANIFEST_FILE = VALUES["MANIFEST_FILE"]
NGINX_CONF_DIR = VALUES["NGINX_CONF_DIR"]
UPSTREAM_FILE = VALUES["UPSTREAM_FILE"]
RELEASES_FILE = VALUES["RELEASES_FILE"]
AUDIT_FILE = VALUES["AUDIT_FILE"]
LOCK_INFO_FILE = VALUES["LOCK_INFO_FILE"]
RELEASE_STACK_FILE = VALUES["RELEASE_STACK_FILE"]
RELEASE_ENV_FILE = VALUES["RELEASE_ENV_FILE"]
EXPORT_DIR = VALUES["EXPORT_DIR"]
OAUTH_MOVED_FILE = VALUES["OAUTH_MOVED_FILE"]
RUNS_DIR = VALUES["RUNS_DIR"]

# Defaults of the scripts' flags, which the settings of the same meaning share.
HEALTH_TIMEOUT = VALUES["HEALTH_TIMEOUT"]
DEPLOY_VERIFY_SECONDS = VALUES["DEPLOY_VERIFY_SECONDS"]
ROLLBACK_VERIFY_SECONDS = VALUES["ROLLBACK_VERIFY_SECONDS"]
BUILD_TIMEOUT = VALUES["BUILD_TIMEOUT"]
KEEP_RELEASES = VALUES["KEEP_RELEASES"]
KEEP_WARM = VALUES["KEEP_WARM"]
DRAIN_SECONDS = VALUES["DRAIN_SECONDS"]

# Bounds on reading the app checkout (seconds): its .git is the app's to write.
CHECKOUT_FETCH_TIMEOUT = int(VALUES["CHECKOUT_FETCH_TIMEOUT"])
CHECKOUT_READ_TIMEOUT = int(VALUES["CHECKOUT_READ_TIMEOUT"])

# The stack's own names.
PROXY_CONTAINER = VALUES["PROXY_CONTAINER"]
PROXY_SERVICE = VALUES["PROXY_SERVICE"]
PROXY_LISTEN_PORT = int(VALUES["PROXY_LISTEN_PORT"])
PROXY_CONF_MOUNT = VALUES["PROXY_CONF_MOUNT"]
PROXY_LIVE_MOUNT = VALUES["PROXY_LIVE_MOUNT"]
APP_MCP_PATH = VALUES["APP_MCP_PATH"]
COLORS = tuple(VALUES["COLORS"].split(","))

# Every command the NAS scripts run: `inv setup` (facts.sh tools) checks each.
NAS_TOOLS = tuple(VALUES["NAS_TOOLS"].split(","))
