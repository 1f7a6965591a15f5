"""Every setting in one table, read from `.env` and the environment.

Why a table: validation, `inv config` (with secrets redacted) and the `.env.example`
check in the tests all derive from it, so a setting cannot exist undocumented or
unchecked. A real environment variable wins over `.env`, as in any twelve-factor tool.
Values are parsed when loaded, so a malformed one is reported before any connection.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent


# --- parsers: each turns the raw text into a value or raises ValueError(reason) ---

def text(raw: str) -> str:
    return raw


def word(raw: str) -> str:
    """A host or user name: no spaces, no leading dash (it would read as an option)."""
    if not re.fullmatch(r"[A-Za-z0-9_.@%:\[\]][A-Za-z0-9_.@%:\[\]-]*", raw):
        raise ValueError("expected a single word of letters, digits, '.', '_' or '-'")
    return raw


def port(raw: str) -> int:
    value = int(raw) if raw.isdigit() else -1
    if not 1 <= value <= 65535:
        raise ValueError("expected a port number from 1 to 65535")
    return value


def positive_int(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError("expected a whole number of at least 1")
    return int(raw)


def count(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError("expected a whole number (0 or more)")
    return int(raw)


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"expected one of: {', '.join(options)}")
        return raw
    return parse


def seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError("expected a number of seconds greater than 0")
    return value


def local_path(raw: str) -> Path:
    return Path(raw).expanduser()


def remote_path(raw: str) -> str:
    """An absolute path on the NAS; also written into shell env files, so kept plain."""
    if not re.fullmatch(r"/[A-Za-z0-9_./@:+-]*", raw):
        raise ValueError("expected an absolute path without spaces or quotes")
    return raw.rstrip("/") or "/"


def stack_value(raw: str) -> str:
    """A value written into the NAS's stack.env, which both compose and bash read."""
    if not re.fullmatch(r"[A-Za-z0-9_./@:+-]*", raw):
        raise ValueError("expected letters, digits and . _ / @ : + - only")
    return raw


def url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    return raw.rstrip("/")


def url_path(raw: str) -> str:
    if not raw.startswith("/"):
        raise ValueError("expected a path starting with /")
    return raw


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


SYNOLOGY_DOCKER = "/var/packages/ContainerManager/target/usr/bin/docker"

SETTINGS: tuple[Setting, ...] = (
    # Reaching the NAS
    Setting("NAS_HOST", None, word, "NAS host name or address"),
    Setting("NAS_PORT", "22", port, "NAS SSH port"),
    Setting("NAS_USER", None, word, "SSH user on the NAS"),
    Setting("NAS_SSH_KEY", "", local_path, "private key file; empty: ssh-agent and ~/.ssh/config"),
    Setting("NAS_SUDO_PASSWORD", "", text,
            "answered to sudo's prompt; empty: passwordless sudo (sudo --non-interactive)", secret=True),
    Setting("NAS_KNOWN_HOSTS", "~/.ssh/known_hosts", local_path, "known_hosts file holding the NAS host key"),
    Setting("NAS_CONNECT_TIMEOUT", "10", seconds, "seconds to wait for the SSH connection"),
    Setting("NAS_DOCKER", SYNOLOGY_DOCKER, remote_path, "docker binary on the NAS (not on a non-interactive PATH)"),
    Setting("NAS_APP_DIR", "/volume1/LOOP_CORE/vault/LOOP", remote_path, "app checkout on the NAS"),
    # Deploying
    Setting("DEPLOY_HEALTH_TIMEOUT", "120", positive_int, "seconds a new container has to become healthy"),
    Setting("DEPLOY_VERIFY_SECONDS", "30", positive_int, "seconds to verify traffic through the proxy after a switch"),
    Setting("ROLLBACK_VERIFY_SECONDS", "2", positive_int, "seconds to verify traffic after a rollback's switch"),
    Setting("KEEP_RELEASES", "5", positive_int, "release images kept for rollback --to"),
    # The stack on the NAS (written to stack.env by `inv setup`)
    Setting("STACK_BASE_IMAGE", "python:3.12-slim", stack_value, "base image the app is built on"),
    Setting("STACK_PROXY_IMAGE", "nginx:1.27-alpine", stack_value, "nginx image for the proxy"),
    Setting("STACK_BIND", "0.0.0.0", stack_value, "address the proxy and auth ports are published on"),
    Setting("STACK_PROXY_PORT", "8082", port, "proxy port on the NAS"),
    Setting("STACK_AUTH_PORT", "8084", port, "auth service port on the NAS"),
    Setting("STACK_VAULT_DIR", "/volume1/LOOP_CORE/vault", remote_path, "vault mounted read/write into the api"),
    Setting("STACK_EXEC_VAULT_DIR", "/volume1/LOOP_CORE/exec-vault", remote_path, "exec vault mounted read/write"),
    Setting("STACK_OAUTH_DIR", "/volume1/LOOP_CORE/oauth", remote_path, "OAuth keys/ and oauth.db (persistent)"),
    # local-sync
    Setting("LOCAL_REPO", ".", local_path, "local app repository"),
    Setting("GIT_REMOTE", "origin", word, "git remote pushed to and fetched from (same name on the NAS)"),
    Setting("GIT_BRANCH", "", word, "branch to deploy; empty: the local current branch"),
    # Checks (HTTP only)
    Setting("PUBLIC_URL", None, url, "base URL ChatGPT uses, e.g. https://mcp.example.com"),
    Setting("HEALTH_PATH", "/health", url_path, "health endpoint under PUBLIC_URL"),
    Setting("MCP_PATH", "/mcp", url_path, "MCP endpoint under PUBLIC_URL"),
    Setting("JWKS_URL", "", url, "auth service JWKS URL; empty: not checked"),
    Setting("MCP_TOKEN", "", text, "bearer token for an OAuth-protected MCP endpoint", secret=True),
    Setting("CHECK_TIMEOUT", "5", seconds, "seconds per HTTP request"),
    Setting("CHECK_DEADLINE", "30", seconds, "seconds a whole check may take, retries included"),
    Setting("CHECK_RETRIES", "2", count, "retries with backoff after a failed health request"),
    Setting("CHECK_CA_BUNDLE", "", local_path, "CA file to trust (private CA); empty: system CAs"),
    Setting("HEALTH_EXPECT", "status=ok", text, "key=value the health JSON must hold; empty: any JSON object"),
    Setting("HEALTH_WARN_SECONDS", "1", seconds, "response time that makes health WARNING"),
    Setting("HEALTH_CRIT_SECONDS", "3", seconds, "response time that makes health CRITICAL"),
    Setting("CERT_WARN_DAYS", "14", positive_int, "certificate days left that make health WARNING"),
    Setting("CERT_CRIT_DAYS", "3", positive_int, "certificate days left that make health CRITICAL"),
    Setting("ALERT_WEBHOOK_URL", "", url, "POSTed on every health state change", secret=True),
    Setting("ALERT_WEBHOOK_FORMAT", "json", choice("json", "text"), "json, or text for ntfy-style services"),
    Setting("HEALTHCHECK_PING_URL", "", url, "healthchecks.io-style ping URL (/fail on trouble)", secret=True),
    Setting("HEALTH_STATE_FILE", "~/.local/state/loopctl/health-state.json", local_path,
            "where health remembers the last state"),
    # Local records
    Setting("AUDIT_LOG", "~/.local/state/loopctl/audit.jsonl", local_path, "local copy of the audit trail"),
)

BY_NAME = {s.name: s for s in SETTINGS}
SSH_REQUIRED = ("NAS_HOST", "NAS_USER")


class Settings:
    """Parsed settings; attribute access by lower-case name (`settings.nas_port`)."""

    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str]):
        self._values = dict(values)
        self._sources = dict(sources)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name.upper()]
        except KeyError:
            raise AttributeError(name) from None

    def require(self, *names: str) -> None:
        missing = [n for n in names if self._values.get(n) in (None, "")]
        if missing:
            raise ConfigError(f"{missing[0]} is not set (put it in .env or the environment; see .env.example)")

    def secrets(self) -> list[str]:
        """Secret values in use, for scrubbing from anything printed or logged."""
        return [self._values[s.name] for s in SETTINGS if s.secret and self._values.get(s.name)]

    def redacted(self) -> list[tuple[str, str, str]]:
        """(name, shown value, source) for `inv config`: secrets never shown."""
        rows = []
        for s in SETTINGS:
            value = self._values.get(s.name)
            if value in (None, ""):
                shown = "(not set)"
            elif s.secret:
                shown = "(set, redacted)"
            else:
                shown = str(value)
            rows.append((s.name, shown, self._sources.get(s.name, "default")))
        return rows


def env_file(environ: Mapping[str, str] = os.environ) -> Path:
    """`LOOP_ENV_FILE` points elsewhere (the sandbox uses its own); default `.env` beside tasks.py."""
    return Path(environ.get("LOOP_ENV_FILE") or PROJECT_DIR / ".env").expanduser()


def load(environ: Mapping[str, str] = os.environ) -> Settings:
    path = env_file(environ)
    file_values = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        if s.name in environ:
            raw, source = environ[s.name], "environment"
        elif s.name in file_values:
            raw, source = file_values[s.name], str(path)
        else:
            raw, source = s.default, "default"
        if raw is None or (raw == "" and s.default in (None, "")):
            values[s.name] = raw
        else:
            try:
                values[s.name] = s.parse(raw.strip())
            except ValueError as exc:
                raise ConfigError(f"{s.name}={'<redacted>' if s.secret else raw!r} is invalid: {exc}") from None
        sources[s.name] = source
    return Settings(values, sources)
