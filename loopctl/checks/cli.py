"""Entry points of the check verbs: flags and settings in, one plugin line and an exit code out.

Why flags go through `settings.load`: a flag is just a setting given on the command line,
so it is parsed and validated by the same table, and a bad value is the same UNKNOWN
line as a bad `.env` entry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .. import settings as settings_module
from ..errors import ConfigError
from . import alerts, health as health_check, mcp as mcp_check
from .plugin import Report, Status, emit, unknown

Check = Callable[[settings_module.Settings, "bool | str"], Report]


def _load(flags: dict[str, str | None]) -> settings_module.Settings:
    given = {name: str(value) for name, value in flags.items() if value is not None}
    loaded = settings_module.load({**os.environ, **given})
    loaded.require("PUBLIC_URL")
    return loaded


def _verify(loaded: settings_module.Settings) -> bool | str:
    """What requests should trust: the system CAs, or the CHECK_CA_BUNDLE file."""
    bundle = loaded.check_ca_bundle
    if not bundle:
        return True
    if not Path(bundle).is_file():
        raise ConfigError(f"CHECK_CA_BUNDLE={str(bundle)!r} is not a file")
    return str(bundle)


def _run(service: str, check: Check, flags: dict, *, as_json: bool, quiet: bool, alert: bool = False) -> int:
    try:
        loaded = _load(flags)
        verify = _verify(loaded)
    except ConfigError as exc:
        return emit(unknown(service, str(exc)), as_json=as_json, quiet=False, secrets=[])
    secrets = loaded.secrets()
    try:
        report = check(loaded, verify)
    except ConfigError as exc:
        report = unknown(service, str(exc))
    except Exception as exc:  # a bug in the check, not a verdict on the server
        report = unknown(service, f"the check itself failed: {type(exc).__name__}: {exc}")
    if alert and report.status != Status.UNKNOWN:
        report.details["alerting"] = alerts.notify(report, loaded, secrets)
    return emit(report, as_json=as_json, quiet=quiet, secrets=secrets)


def health(*, url: str | None, timeout: str | None, retries: str | None,
           as_json: bool, quiet: bool, alert: bool) -> int:
    flags = {"PUBLIC_URL": url, "CHECK_TIMEOUT": timeout, "CHECK_RETRIES": retries}
    return _run(health_check.SERVICE, health_check.run, flags, as_json=as_json, quiet=quiet, alert=alert)


def mcp(*, url: str | None, timeout: str | None, as_json: bool, quiet: bool) -> int:
    flags = {"PUBLIC_URL": url, "CHECK_TIMEOUT": timeout}
    return _run(mcp_check.SERVICE, mcp_check.run, flags, as_json=as_json, quiet=quiet)
