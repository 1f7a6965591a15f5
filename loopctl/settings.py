"""Every setting in one table, read from `.env` and the environment.

Why a table: validation, `inv config` (with secrets redacted) and the `.env.example`
check in the tests all derive from it, so a setting cannot exist undocumented or
unchecked. A real environment variable wins over `.env`, as in any twelve-factor tool.
Values are parsed when loaded, so a malformed one is reported before any connection.

Why strict: a typo in the settings file (`NAS_PROT=41000`), a key given twice, a line
the parser cannot read, a LOOP_ENV_FILE that does not exist or a number beyond all
reason would otherwise be dropped or taken silently, and the verb would run on a
default nobody chose. Each is one line naming the file's line instead. Only the file
is held to its names: the real environment holds many unrelated variables, so there a
name that is a near miss of a setting's (same first word, a letter or two off) only
warns.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from . import contract
from .errors import ConfigError
from .text import MASK, printable

PROJECT_DIR = Path(__file__).resolve().parent.parent


# --- parsers: each turns the raw text into a value or raises ValueError(reason) ---

def text(raw: str) -> str:
    return raw


def secret(raw: str) -> str:
    """A password or token, kept exactly as written (spaces at either end are part of it);
    one line, since sudo reads the password up to the first newline."""
    if "\n" in raw or "\r" in raw:
        raise ValueError("expected one line")
    return raw


def matching(pattern: str, expected: str, doc: str) -> Callable[[str], str]:
    """A parser for plain text that must match `pattern` whole (what is written into env files
    and command lines on the NAS stays plain)."""
    compiled = re.compile(pattern)

    def parse(raw: str) -> str:
        if not compiled.fullmatch(raw):
            raise ValueError(f"expected {expected}")
        return raw
    parse.__doc__ = doc
    return parse


word = matching(r"[A-Za-z0-9_.@%:\[\]][A-Za-z0-9_.@%:\[\]-]*", "a single word of letters, digits, '.', '_' or '-'",
                "A host or user name: no spaces, no leading dash (it would read as an option).")
stack_value = matching(r"[A-Za-z0-9_./@:+-]*", "letters, digits and . _ / @ : + - only",
                       "A value written into the NAS's stack.env, which both compose and bash read.")
service_name = matching(r"[a-z0-9][a-z0-9_.-]*", "a Compose service name: lowercase letters, digits, '.', '_' or '-'",
                        "A Compose service name (also the start of container and image names).")


def host(raw: str) -> str:
    """NAS_HOST: a name or address only. `user@host` or `host:port` would be taken for a
    strange host name (or silently ignore the port), so each is pointed to its own setting."""
    if "@" in raw:
        raise ValueError("expected the host only: put the user in NAS_USER")
    if raw.count(":") == 1 or "]:" in raw:  # an IPv6 address has two or more colons
        raise ValueError("expected the host only: put the port in NAS_PORT")
    return word(raw)


def _whole(raw: str) -> int | None:
    """ASCII digits only: str.isdigit() also accepts '²' (which int() then rejects) and '٣'."""
    return int(raw) if re.fullmatch(r"[0-9]+", raw) else None


def port(raw: str) -> int:
    value = _whole(raw)
    if value is None or not 1 <= value <= 65535:
        raise ValueError("expected a port number from 1 to 65535")
    return value


def positive_int(raw: str) -> int:
    value = _whole(raw)
    if value is None or value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def count(raw: str, flag: str | None = None, like: str | None = None) -> int:
    """A whole number, 0 or more: a setting, or a verb's flag (`count(raw, "--tail")`). Flags
    arrive as text, and Invoke's own int parsing would end in a traceback. A flag that stands
    in for a setting (`like="DEPLOY_HEALTH_TIMEOUT"`) has that setting's maximum."""
    value = _whole(str(raw))
    if value is None:
        if flag:
            raise ConfigError(f"{flag} takes a whole number (0 or more), not {raw!r}")
        raise ValueError("expected a whole number (0 or more)")
    maximum = BY_NAME[like].maximum if like else None
    if flag and maximum is not None and value > maximum:
        raise ConfigError(f"{flag} takes at most {maximum:g} (as {like} does), not {raw!r}")
    return value


def boolean(raw: str) -> bool:
    if raw.lower() not in ("0", "1", "no", "yes", "false", "true"):
        raise ValueError("expected 1 or 0")
    return raw.lower() in ("1", "yes", "true")


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"expected one of: {', '.join(options)}")
        return raw
    return parse


def seconds(raw: str) -> float:
    """ASCII decimals only: float() also takes 'inf', '1e9' and other scripts' digits."""
    value = float(raw) if re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", raw) else -1.0
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


def relative_path(raw: str) -> str:
    """A file inside the app checkout, named relative to it."""
    if not re.fullmatch(r"[A-Za-z0-9_.@+-][A-Za-z0-9_./@+-]*", raw) or ".." in raw.split("/"):
        raise ValueError("expected a path relative to the checkout, without spaces, quotes or '..'")
    return raw


def url(raw: str) -> str:
    """An http(s) URL that requests can send as it is: no spaces, a port that is a number
    (`http://a b` would otherwise pass here and fail later as if the server were down)."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    if re.search(r"\s", raw):
        raise ValueError("expected a URL without spaces (write a space in a path as %20)")
    try:
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError:
        raise ValueError("expected a URL whose port is a number from 1 to 65535") from None
    return raw.rstrip("/")


def url_path(raw: str) -> str:
    if not raw.startswith("/"):
        raise ValueError("expected a path starting with /")
    return raw


@dataclass(frozen=True)
class Setting:
    """`maximum`: the largest number a numeric setting takes (its parser sets the least). A
    timeout of 999999999999 s is a typo, and with it a verb against a silent port never ends."""

    name: str
    default: str | None
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    maximum: float | None = None

    def __post_init__(self) -> None:
        if self.default is not None and not isinstance(self.default, str):  # the contract's numbers
            object.__setattr__(self, "default", str(self.default))


SYNOLOGY_DOCKER = "/var/packages/ContainerManager/target/usr/bin/docker"

SETTINGS: tuple[Setting, ...] = (
    # Reaching the NAS
    Setting("NAS_HOST", None, host, "NAS host name or address"),
    Setting("NAS_PORT", "22", port, "NAS SSH port"),
    Setting("NAS_USER", None, word, "SSH user on the NAS"),
    Setting("NAS_SSH_KEY", "", local_path, "private key file; empty: ssh-agent and ~/.ssh/config"),
    Setting("NAS_SUDO_PASSWORD", "", secret,
            "answered to sudo's prompt; empty: passwordless sudo (sudo --non-interactive)", secret=True),
    Setting("NAS_KNOWN_HOSTS", "~/.ssh/known_hosts", local_path, "known_hosts file holding the NAS host key"),
    Setting("NAS_CONNECT_TIMEOUT", "10", seconds, "seconds to wait for the SSH connection", maximum=300),
    Setting("NAS_DOCKER", SYNOLOGY_DOCKER, remote_path, "docker binary on the NAS (not on a non-interactive PATH)"),
    Setting("NAS_APP_DIR", "/volume1/LOOP_CORE/vault/LOOP", remote_path,
            "app checkout on the NAS (the app's own compose file is at its root)"),
    Setting("NAS_LOOPCTL_DIR", "/volume1/@loopctl", remote_path,
            "loopctl's home on the NAS: scripts, stack files, state, backups; root's alone, outside the checkout"),
    # The app (its own compose file is the source of truth)
    Setting("APP_COMPOSE_FILE", "docker-compose.yml", relative_path, "the app's compose file, relative to the checkout"),
    Setting("API_SERVICE", "loop-api", service_name, "the compose service deployed blue-green behind the proxy"),
    Setting("AUTH_SERVICE", "loop-auth", service_name, "the compose service serving the JWKS; empty: none"),
    Setting("API_OAUTH_PATH", "/app/api/oauth", remote_path,
            "where the api mounts its OAuth keys and database (rebuild-all backs that folder up, then replaces it)"),
    # Deploying
    Setting("DEPLOY_HEALTH_TIMEOUT", contract.HEALTH_TIMEOUT, positive_int,
            "seconds a new container has to become healthy", maximum=3600),
    Setting("DEPLOY_VERIFY_SECONDS", contract.DEPLOY_VERIFY_SECONDS, positive_int,
            "seconds to verify traffic through the proxy after a switch", maximum=3600),
    Setting("ROLLBACK_VERIFY_SECONDS", contract.ROLLBACK_VERIFY_SECONDS, count,
            "seconds to verify traffic after a rollback's switch (0: until the release answers through the "
            "proxy; an MCP session through it follows either way)", maximum=3600),
    Setting("DEPLOY_BUILD_TIMEOUT", contract.BUILD_TIMEOUT, positive_int,
            "seconds a build may take before it is stopped and undone", maximum=86400),
    Setting("KEEP_RELEASES", contract.KEEP_RELEASES, positive_int, "release images kept for rollback --to", maximum=100),
    Setting("KEEP_WARM", contract.KEEP_WARM, boolean,
            "keep the replaced color running as the warm standby (its sessions go on; rollback is a switch)"),
    Setting("DRAIN_SECONDS", contract.DRAIN_SECONDS, positive_int,
            "seconds the proxy keeps a replaced color's open MCP streams after a switch", maximum=86400),
    # The stack on the NAS (written to stack.env by `inv setup`)
    Setting("STACK_PROXY_IMAGE", "nginx:1.27-alpine", stack_value, "nginx image for the proxy"),
    Setting("STACK_PROXY_PORT", "", port,
            "port the proxy publishes; empty: the one API_SERVICE publishes in the compose file"),
    Setting("STACK_COMPOSE", "auto", choice("auto", "v2", "v1"),
            "Compose on the NAS: auto prefers v2 (`docker compose`), else v1 (`docker-compose`)"),
    Setting("LOCAL_REPO", ".", local_path, "local app repository"),
    Setting("GIT_REMOTE", "origin", word, "git remote pushed to and fetched from (same name on the NAS)"),
    Setting("GIT_BRANCH", "", word, "branch to deploy; empty: the local current branch"),
    # Checks (HTTP only)
    Setting("PUBLIC_URL", None, url, "base URL ChatGPT uses, e.g. https://mcp.example.com"),
    Setting("HEALTH_PATH", "/health", url_path, "health endpoint under PUBLIC_URL"),
    Setting("MCP_PATH", "/mcp", url_path, "MCP endpoint under PUBLIC_URL"),
    Setting("JWKS_URL", "", url, "auth service JWKS URL; empty: not checked"),
    Setting("MCP_TOKEN", "", secret, "bearer token for an OAuth-protected MCP endpoint", secret=True),
    Setting("ALLOW_INSECURE_TOKEN", "0", boolean,
            "1: send MCP_TOKEN over plain http:// to a host other than this machine (anyone on the way can read it)"),
    Setting("CHECK_TIMEOUT", "5", seconds, "seconds per HTTP request", maximum=300),
    Setting("CHECK_DEADLINE", "30", seconds, "seconds a whole check may take, retries included", maximum=3600),
    Setting("CHECK_RETRIES", "2", count, "retries with backoff after a failed health request", maximum=10),
    Setting("CHECK_CA_BUNDLE", "", local_path, "CA file to trust (private CA); empty: system CAs"),
    Setting("HEALTH_EXPECT", "status=ok", text, "key=value the health JSON must hold; empty: any JSON object"),
    Setting("HEALTH_WARN_SECONDS", "1", seconds, "response time that makes health WARNING", maximum=300),
    Setting("HEALTH_CRIT_SECONDS", "3", seconds, "response time that makes health CRITICAL", maximum=300),
    Setting("CERT_WARN_DAYS", "14", positive_int, "certificate days left that make health WARNING", maximum=3650),
    Setting("CERT_CRIT_DAYS", "3", positive_int, "certificate days left that make health CRITICAL", maximum=3650),
    Setting("ALERT_WEBHOOK_URL", "", url, "POSTed on every health state change", secret=True),
    Setting("ALERT_WEBHOOK_FORMAT", "json", choice("json", "text"), "json, or text for ntfy-style services"),
    Setting("HEALTHCHECK_PING_URL", "", url, "healthchecks.io-style ping URL (/fail on trouble)", secret=True),
    Setting("HEALTH_STATE_FILE", "~/.local/state/loopctl/health-state.json", local_path,
            "where health remembers the last state"),
    # Local records
    Setting("AUDIT_LOG", "~/.local/state/loopctl/audit.jsonl", local_path, "local copy of the audit trail"),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
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
        """Secret values in use, for scrubbing from anything printed, logged or sent: the secret
        settings, the path and query of secret URLs (where their tokens sit), and credentials
        written into any URL (`https://user:pass@host`)."""
        found = []
        for setting in SETTINGS:
            value = self._values.get(setting.name)
            if not value:
                continue
            if setting.secret:
                found.append(value)
            if setting.parse is url:
                parts = urlsplit(value)
                if setting.secret:
                    found += [part for part in (parts.path, parts.query) if len(part) > 1]
                userinfo, at, _ = parts.netloc.rpartition("@")
                if at:
                    found += [userinfo, unquote(userinfo)]
                    if parts.password:
                        found += [parts.password, unquote(parts.password)]
        return found

    def redacted(self) -> list[tuple[str, str, str]]:
        """(name, shown value, source) for `inv config`: secrets and URL credentials never shown."""
        rows = []
        for setting in SETTINGS:
            value = self._values.get(setting.name)
            if value in (None, ""):
                shown = "(not set)"
            elif setting.secret:
                shown = "(set, redacted)"
            elif setting.parse is url:
                shown = without_credentials(value)
            elif isinstance(value, bool):
                shown = "1" if value else "0"
            else:
                shown = printable(str(value))
            rows.append((setting.name, shown, self._sources.get(setting.name, "default")))
        return rows


def without_credentials(address: str) -> str:
    """A URL as it may be shown: `https://user:pass@host` becomes `https://<redacted>@host`."""
    parts = urlsplit(address)
    _, at, hostport = parts.netloc.rpartition("@")
    shown = parts._replace(netloc=f"{MASK}@{hostport}").geturl() if at else address
    return printable(shown)


_warned: set[str] = set()


def warn_if_readable(path: Path, file_values: Mapping[str, str]) -> None:
    """Once per file: a settings file holding a secret must not be readable by other users."""
    held = [setting.name for setting in SETTINGS if setting.secret and file_values.get(setting.name)]
    where = os.path.abspath(path)
    if not held or where in _warned or not path.stat().st_mode & 0o044:
        return
    _warned.add(where)
    print(f"warning: {where} holds {', '.join(held)} and other users can read it; "
          f"run: chmod 600 {shlex.quote(where)}", file=sys.stderr, flush=True)


def env_file(environ: Mapping[str, str] = os.environ) -> Path:
    """`LOOP_ENV_FILE` points elsewhere (the sandbox uses its own); default `.env` beside tasks.py."""
    return Path(environ.get("LOOP_ENV_FILE") or PROJECT_DIR / ".env").expanduser()


def closest(name: str, cutoff: float = 0.6) -> str | None:
    """The setting a mistyped name most likely meant."""
    found = difflib.get_close_matches(name, BY_NAME, n=1, cutoff=cutoff)
    return found[0] if found else None


@dataclass(frozen=True)
class FileValue:
    value: str
    line: int


def read_env_file(path: Path, explicit: bool, only: frozenset[str]) -> dict[str, FileValue]:
    """The settings file's values, each with its line; any line that is not a known setting
    given once, in a form python-dotenv reads, is an error naming that line. (dotenv itself
    only warns about a line it cannot read, and drops the setting on it.) `/dev/null`, or no
    `.env` where none was asked for, is no file. A line's text is never quoted: it may hold a
    secret. Duplicates count among the `only` settings (the ones the verb reads)."""
    if not path.exists():
        if explicit:
            raise ConfigError(f"LOOP_ENV_FILE={str(path)!r} does not exist (for no settings file, use /dev/null)")
        return {}
    if path.is_dir():
        raise ConfigError(f"settings file {str(path)!r} is a directory")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"settings file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"settings file {str(path)!r} is not UTF-8 text") from None
    seen: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        # dotenv counts a binding from the blank lines before it
        line = binding.original.line + len(re.findall(r"\r\n|\n|\r", re.match(r"\s*", binding.original.string).group()))
        where = f"{path}:{line}"
        if binding.error:
            raise ConfigError(f"{where}: cannot read this line: expected NAME=value (a value with spaces, "
                              f"'#' or quotes goes in single quotes)")
        if binding.key is None:
            continue  # a blank line or a comment
        if binding.value is None and binding.key not in BY_NAME:
            # No '=' and no setting's name: maybe a password pasted on a line of its own, so the
            # line is not repeated.
            raise ConfigError(f"{where}: this line is not NAME=value (nor a setting's name)")
        key = printable(binding.key)
        if binding.key not in BY_NAME:
            guess = closest(binding.key)
            hint = f"did you mean {guess}?" if guess else "see .env.example for the settings"
            raise ConfigError(f"{where}: {key} is not a loopctl setting; {hint}")
        if binding.value is None:
            raise ConfigError(f"{where}: {key} has no '=' (write {key}= for an empty value)")
        if binding.key in seen and binding.key in only:
            raise ConfigError(f"{path}: {key} is set twice, on lines {seen[binding.key]} and {line}; keep one")
        seen.setdefault(binding.key, line)
    # The values as dotenv reads them (quotes, escapes and ${VAR} as before), from the same text.
    values = dotenv_values(stream=io.StringIO(text))
    return {key: FileValue(value, seen[key]) for key, value in values.items() if value is not None and key in seen}


_warned_names: set[str] = set()


def warn_about_near_misses(environ: Mapping[str, str]) -> None:
    """An environment variable a letter or two off a setting's name, with its first word
    (`NAS_PROT`): a warning, once, since the environment is shared with everything else."""
    words = {name.split("_")[0] for name in BY_NAME}
    for name in environ:
        if name in BY_NAME or name in _warned_names or name.split("_")[0] not in words:
            continue
        guess = closest(name, cutoff=0.85)
        if guess and guess.split("_")[0] == name.split("_")[0]:
            _warned_names.add(name)
            print(f"warning: the environment variable {printable(name)} is not a loopctl setting; "
                  f"did you mean {guess}?", file=sys.stderr, flush=True)


def unprintable(raw: str, setting: Setting) -> str | None:
    """Why a value cannot be used: no value may hold a newline or another control character
    (they would end a line in stack.env, a header, a log line or a command). A tab is kept
    in a secret only, which is taken exactly as written."""
    if "\n" in raw or "\r" in raw:
        return "expected one line"
    allowed, inner = ("\t", raw) if setting.secret else ("", raw.strip())
    if any((ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F) and ch not in allowed for ch in inner):
        return "expected no control characters"
    return None


def parse_value(setting: Setting, raw: str) -> Any:
    reason = unprintable(raw, setting)
    if reason:
        raise ValueError(reason)
    value = setting.parse(raw if setting.parse is secret else raw.strip())
    if setting.maximum is not None and value > setting.maximum:
        raise ValueError(f"expected at most {setting.maximum:g}")
    return value


def load(environ: Mapping[str, str] = os.environ, only: Iterable[str] | None = None) -> Settings:
    """Every setting, or `only` the ones named: a verb that reads a few (the HTTP checks) is
    not stopped by a malformed one it never uses. The file's own form is checked either way."""
    names = frozenset(only) if only is not None else frozenset(BY_NAME)
    path = env_file(environ)
    file_values = read_env_file(path, bool(environ.get("LOOP_ENV_FILE")), names)
    if file_values:
        warn_if_readable(path, {name: entry.value for name, entry in file_values.items()})
    warn_about_near_misses(environ)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.name not in names:
            continue
        where = ""
        if setting.name in environ:
            raw, source = environ[setting.name], "environment"
        elif setting.name in file_values:
            raw, source = file_values[setting.name].value, str(path)
            where = f" ({path}:{file_values[setting.name].line})"
        else:
            raw, source = setting.default, "default"
        if raw is None or (raw == "" and setting.default in (None, "")):
            values[setting.name] = raw
        else:
            try:
                values[setting.name] = parse_value(setting, raw)
            except ValueError as exc:
                shown = "'<redacted>'" if setting.secret or (setting.parse is url and "@" in raw) else repr(raw)
                raise ConfigError(f"{setting.name}={shown} is invalid: {exc}{where}") from None
        sources[setting.name] = source
    return Settings(values, sources)
