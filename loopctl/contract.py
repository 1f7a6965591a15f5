"""The contract with the NAS scripts: exit codes, state file names and flag defaults.

Why a file both sides read: the names and numbers the scripts use on the NAS and the
ones Python uses here must agree, and a copy on each side of the SSH boundary drifts.
`scripts/contract.env` is the one home of each; bash sources it, this module parses it
(plain NAME=value lines) and offers every name in it as an attribute, and
`tests/scripts/test_contract.py` checks the scripts use it. The formats that cross SSH
(stack.env, release.env, releases.tsv, a color's container name) are checked there too, by
writing them on one side and reading them on the other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .errors import ConfigError, Locked, LoopError, Refused, RemoteFailed, StillRunning

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


def typed(value: str) -> int | str | tuple[str, ...]:
    """A contract value as Python uses it: digits are a number, a comma makes a list."""
    if value.isdigit():
        return int(value)
    return tuple(value.split(",")) if "," in value else value


# Every name of contract.env is an attribute of this module, typed as `typed` says:
# `contract.EXIT_LOCKED` is 75, `contract.COLORS` ("blue", "green"). None is written here again.
TYPED = {name: typed(value) for name, value in VALUES.items()}


def __getattr__(name: str) -> Any:
    try:
        return TYPED[name]
    except KeyError:
        raise AttributeError(f"{CONTRACT_FILE.name} defines no {name}") from None


def __dir__() -> list[str]:
    return sorted([*globals(), *TYPED])


def api_container(api_service: str, color: str) -> str:
    """The name of a color's api container (lib-deploy.sh's `container` names it the same way)."""
    return f"{api_service}-{color}"


# What each exit status of a NAS script means here: the error raised (and so `inv`'s exit code,
# errors.py) and how its message reads; `reason` is the script's last ERROR: line. A status
# not in the table reads as EXIT_FAILED.
FAILED = (RemoteFailed, "{script} failed (exit {exited}): {reason}")
SCRIPT_EXITS: dict[str, tuple[type[LoopError], str]] = {
    "EXIT_FAILED": FAILED,
    "EXIT_USAGE": (ConfigError, "{reason}"),
    "EXIT_NOTHING_TO_ROLL_BACK": (Refused, "{reason}"),
    "EXIT_REFUSED": (Refused, "{reason}"),
    "EXIT_LOCKED": (Locked, "{reason}"),
    "EXIT_DISK_FULL": FAILED,
    "EXIT_STILL_RUNNING": (StillRunning, "{script} still runs on the NAS, though the wrapper that waits for it "
                                         "there ended; `inv status` shows when it is done"),
}
ERROR_OF_EXIT = {TYPED[name]: error for name, error in SCRIPT_EXITS.items()}


def script_failure(script: str, exited: int, reason: str) -> LoopError:
    """The error for `script`'s non-zero exit status `exited`."""
    error, message = ERROR_OF_EXIT.get(exited, FAILED)
    return error(message.format(script=script, exited=exited, reason=reason))
