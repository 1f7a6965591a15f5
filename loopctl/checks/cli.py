"""Entry points of the check verbs: flags and settings in, one plugin line and an exit code out.

Why flags go through `settings.load`: a flag is just a setting given on the command line,
so it is parsed and validated by the same table, and a bad value is the same UNKNOWN
line as a bad `.env` entry. Each check reads only the settings it uses (below): a bad
NAS_PORT is no reason for the HTTP-only health check to be UNKNOWN.

Every way out is a plugin code: bad settings or usage UNKNOWN, Ctrl-C UNKNOWN, a bug in
the check UNKNOWN. Invoke's own flag errors (`--bogus`) happen before a task runs and
would exit 1, which reads as WARNING; `loopctl.flags.refuse_bad_flags` (run by tasks.py while
it is loaded, before Invoke parses the task's flags, for every verb) hands them to
`refuse_flag`, which reports them the same way.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Callable

from .. import settings as settings_module
from ..errors import ConfigError
from . import alerts, health as health_check, mcp as mcp_check
from .plugin import Report, Status, emit, unknown

Check = Callable[[settings_module.Settings, "bool | str"], Report]


# What each check reads; nothing else in the settings can make it UNKNOWN.
HTTP_SETTINGS = ("PUBLIC_URL", "CHECK_TIMEOUT", "CHECK_DEADLINE", "CHECK_CA_BUNDLE")
HEALTH_SETTINGS = (*HTTP_SETTINGS, "HEALTH_PATH", "JWKS_URL", "CHECK_RETRIES", "HEALTH_EXPECT",
                   "HEALTH_WARN_SECONDS", "HEALTH_CRIT_SECONDS", "CERT_WARN_DAYS", "CERT_CRIT_DAYS",
                   "ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_FORMAT", "HEALTHCHECK_PING_URL", "HEALTH_STATE_FILE")
MCP_SETTINGS = (*HTTP_SETTINGS, "MCP_PATH", "MCP_TOKEN", "ALLOW_INSECURE_TOKEN")


def _load(flags: dict[str, str | None], names: tuple[str, ...]) -> settings_module.Settings:
    given = {name: str(value) for name, value in flags.items() if value is not None}
    loaded = settings_module.load({**os.environ, **given}, only=names)
    loaded.require("PUBLIC_URL")
    return loaded


def _verify(loaded: settings_module.Settings) -> bool | str:
    """What requests should trust: the system CAs, or the CHECK_CA_BUNDLE file, which must
    hold certificates (read here, so a wrong file is a setting's fault, UNKNOWN, and not a
    server's, CRITICAL, on the first TLS handshake)."""
    bundle = loaded.check_ca_bundle
    if not bundle:
        return True
    shown = repr(str(bundle))
    if not Path(bundle).is_file():
        raise ConfigError(f"CHECK_CA_BUNDLE={shown} is not a file")
    try:
        ssl.create_default_context(cafile=str(bundle))
    except OSError as exc:
        reason = exc.strerror or getattr(exc, "reason", None) or "no certificates in it"
        raise ConfigError(f"CHECK_CA_BUNDLE={shown} cannot be read as CA certificates: {reason}") from None
    return str(bundle)


def _run(service: str, check: Check, flags: dict, names: tuple[str, ...], *,
         as_json: bool, quiet: bool, alert: bool = False) -> int:
    try:
        loaded = _load(flags, names)
        verify = _verify(loaded)
    except ConfigError as exc:
        return emit(unknown(service, str(exc)), as_json=as_json, quiet=False, secrets=[])
    secrets = loaded.secrets()
    try:
        report = check(loaded, verify)
    except ConfigError as exc:
        report = unknown(service, str(exc))
    except KeyboardInterrupt:
        return emit(unknown(service, "interrupted"), as_json=as_json, quiet=False, secrets=secrets)
    except Exception as exc:  # a bug in the check, not a verdict on the server
        report = unknown(service, f"the check itself failed: {type(exc).__name__}: {exc}")
    if alert and report.status != Status.UNKNOWN:
        report.details["alerting"] = alerts.notify(report, loaded, secrets)
    return emit(report, as_json=as_json, quiet=quiet, secrets=secrets)


def health(*, url: str | None, timeout: str | None, retries: str | None,
           as_json: bool, quiet: bool, alert: bool) -> int:
    flags = {"PUBLIC_URL": url, "CHECK_TIMEOUT": timeout, "CHECK_RETRIES": retries}
    return _run(health_check.SERVICE, health_check.run, flags, HEALTH_SETTINGS, as_json=as_json, quiet=quiet,
                alert=alert)


def mcp(*, url: str | None, timeout: str | None, as_json: bool, quiet: bool) -> int:
    flags = {"PUBLIC_URL": url, "CHECK_TIMEOUT": timeout}
    return _run(mcp_check.SERVICE, mcp_check.run, flags, MCP_SETTINGS, as_json=as_json, quiet=quiet)


CHECK_SERVICES = {"health": health_check.SERVICE, "mcp-check": mcp_check.SERVICE}


def refuse_flag(verb: str, reason: str, *, as_json: bool) -> int:
    """A flag Invoke refused (`loopctl.flags.refuse_bad_flags`): the check's UNKNOWN line; its exit code."""
    return emit(unknown(CHECK_SERVICES[verb], reason), as_json=as_json, quiet=False, secrets=[])
