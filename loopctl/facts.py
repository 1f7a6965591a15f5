"""Facts: read-only probes of the NAS, each one unit of command, accepted exit codes and parser.

Why units: the command, which exit statuses are normal (a missing file, a held lock) and
how the output reads belong together; spread over a builder, a call site and a parser they
drift apart. Facts run under `--dry` too, so a dry run prints the true plan. Verbs read
them with `read(nas, FACT)`, or several at once with `gather`.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from . import commands, contract
from .bundle import bundle, checksums
from .errors import AuthFailed, CheckoutUnreadable, RemoteFailed
from .runner import Output
from .settings import Settings
from .ssh import Nas

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    name: str
    argv: Callable[[Settings], list[str]]
    parse: Callable[[Output, Settings], T]
    sudo: bool = False
    ok: tuple[int, ...] = (0,)


def read(nas: Nas, fact: Fact[T]) -> T:
    return fact.parse(nas.probe(fact.argv(nas.settings), sudo=fact.sudo, ok=fact.ok), nas.settings)


def gather(nas: Nas, *facts: Fact[Any] | Callable[[Nas], Any]) -> list[Any]:
    """Read several facts at once: each is its own channel on the one SSH connection, so a
    verb waits for the slowest probe instead of the sum of them. A fact that raises, raises here."""
    nas.connection  # open it once, before the threads share it
    with ThreadPoolExecutor(len(facts)) as pool:
        futures = [pool.submit(read, nas, f) if isinstance(f, Fact) else pool.submit(f, nas) for f in facts]
    return [future.result() for future in futures]


# --- the stack, as root sees it ---------------------------------------------------------------

@dataclass(frozen=True)
class Container:
    name: str
    state: str
    health: str
    image: str
    started_at: str
    service: str

    @property
    def commit(self) -> str:
        tag = self.image.rpartition(":")[2]
        return tag if re.fullmatch(r"[0-9a-f]{12}", tag) else ""


@dataclass(frozen=True)
class NasState:
    live: str | None               # blue, green, app (the app's own container) or None
    upstream: str                  # ok, missing or garbled
    lock: str | None               # who holds the deploy lock, or None
    journal: dict[str, str]        # the change a killed script left half-done, or {}
    home_problems: list[str] = field(default_factory=list)
    tool_problems: list[str] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)
    installed: bool = True
    standby: str | None = None     # the color the proxy sends sessions the live one does not know
    app_container: str | None = None  # the app's own api container (its compose's, not loopctl's)
    # Connections open into each running color: the proxy's requests there, MCP streams mostly.
    streams: dict[str, int] = field(default_factory=dict)
    # Where the OAuth state was moved (volume, from, at: scripts/lib-oauth.sh), or {} before.
    oauth: dict[str, str] = field(default_factory=dict)


def parse_status(out: Output, settings: Settings) -> NasState:
    if out.exited != 0:
        if "command not found" in out.stderr or "No such file" in out.stderr:
            # facts.sh is not there: nothing is installed yet (drift says so to the user).
            return NasState(None, "missing", None, {}, installed=False)
        if "password is required" in out.stderr or "not allowed" in out.stderr:
            raise AuthFailed(f"sudo refused {commands.script(settings, commands.FACTS_SCRIPT)}: {out.tail(1)} "
                             f"(see docs/security.md#passwordless-sudo)")
        raise RemoteFailed(f"{commands.FACTS_SCRIPT} status exited {out.exited}: {out.tail()}")
    live, standby, app, upstream, lock, journal, oauth = None, None, None, "missing", None, {}, {}
    home, tools, containers, streams = [], [], [], {}
    for line in out.stdout.splitlines():
        kind, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if kind == "live":
            live = rest or None
        elif kind == "app":
            app = rest or None
        elif kind == "standby":
            standby = rest if rest in contract.COLORS else None
        elif kind == "connections" and len(fields) == 2 and fields[1].isdigit():
            streams[fields[0]] = int(fields[1])
        elif kind == "upstream":
            upstream = rest
        elif kind == "lock" and fields[0] == "held":
            lock = fields[1] if len(fields) > 1 else "a change is running"
        elif kind in ("journal", "oauth"):
            pairs = dict(item.split("=", 1) for item in fields if "=" in item)
            journal, oauth = (pairs, oauth) if kind == "journal" else (journal, pairs)
        elif kind == "home":
            home.append(rest)
        elif kind == "tool":
            tools.append(rest)
        elif kind == "container" and len(fields) == 6:
            name, state, health, image, started, service = fields
            # Docker keeps the last health status of a stopped container; it means nothing then.
            health = health if state == "running" and health else "-"
            containers.append(Container(name.lstrip("/"), state, health, image, started, service))
    return NasState(live, upstream, lock, journal, home, tools, sorted(containers, key=container_order(settings)),
                    standby=standby, app_container=app, streams=streams, oauth=oauth)


def container_order(settings: Settings) -> Callable[[Container], tuple]:
    first = [contract.PROXY_CONTAINER, *(contract.api_container(settings.api_service, c) for c in contract.COLORS)]
    return lambda c: (first.index(c.name) if c.name in first else len(first), c.name)


STATUS = Fact("status", lambda settings: commands.facts(settings, "status"), parse_status, sudo=True, ok=(0, 1, 127))

# What a change checks before it starts: status's lock, home and tool lines only (no containers),
# so the way to a rollback's switch stays short.
PREFLIGHT = Fact("preflight", lambda settings: commands.facts(settings, "preflight"), parse_status, sudo=True,
                 ok=(0, 1, 127))


def parse_lock(out: Output, settings: Settings) -> str | None:
    if out.exited != contract.EXIT_LOCKED:
        return None
    return out.stdout.strip() or "a change is running"


LOCK = Fact("lock", lambda settings: commands.facts(settings, "lock"), parse_lock, sudo=True,
            ok=(0, contract.EXIT_LOCKED))


# --- the NAS copies of the scripts, against this checkout's bundle ------------------------------
# Checksums of the NAS files, compared with the local bundle: a hand edit on the NAS shows up
# as much as a newer local script.

def parse_sha256sum(text: str, prefix: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        digest, _, path = line.partition("  ")
        if path.startswith(prefix):
            found[path[len(prefix):]] = digest
    return found


def parse_drift(out: Output, settings: Settings) -> dict:
    """{'files': n, 'changed': [...], 'missing': [...]} of the NAS copies against the local bundle."""
    wanted = checksums(bundle(settings))
    found = parse_sha256sum(out.stdout, commands.home(settings) + "/")
    return {
        "files": len(wanted),
        "missing": [p for p in wanted if p not in found],
        "changed": [p for p in wanted if p in found and found[p] != wanted[p]],
    }


DRIFT = Fact("drift",
             lambda settings: commands.checksums([commands.in_home(settings, p) for p in checksums(bundle(settings))]),
             parse_drift, ok=(0, 1))


def describe_drift(d: dict) -> str:
    if len(d["missing"]) == d["files"]:
        return "not installed: run `inv setup`"
    if is_in_sync(d):
        return f"in sync ({d['files']} files)"
    parts = [f"{p} differs" for p in d["changed"]] + [f"{p} missing" for p in d["missing"]]
    return "DRIFT: " + ", ".join(parts) + " (run `inv setup`)"


def is_in_sync(d: dict) -> bool:
    return not d["missing"] and not d["changed"]


# --- the app checkout (as the SSH user) ---------------------------------------------------------
# Each read is bounded (commands.bounded): the app can put a FIFO in the checkout's .git.

def checkout_blocked(settings: Settings, what: str, seconds: int, other_cause: str = "") -> CheckoutUnreadable:
    """The one wording of a read of the checkout that ran out of time (`other_cause`: "X, or ")."""
    return CheckoutUnreadable(f"{what} in the NAS checkout {settings.nas_app_dir} took longer than {seconds}s and "
                              f"was stopped: {other_cause}something in the checkout's .git blocks reads (a FIFO? on "
                              f"the NAS: find {settings.nas_app_dir}/.git -type p); remove it after checking who put "
                              f"it there")


def readable(what: str, parse: Callable[[Output, Settings], T]) -> Callable[[Output, Settings], T]:
    """`parse`, after raising CheckoutUnreadable when the bound on the read ran out."""
    def checked(out: Output, settings: Settings) -> T:
        if out.exited in commands.TIMED_OUT:
            raise checkout_blocked(settings, what, contract.CHECKOUT_READ_TIMEOUT)
        return parse(out, settings)
    return checked


def or_unreadable(fact: Fact[T]) -> Callable[[Nas], T | CheckoutUnreadable]:
    """For `gather` in status: the fact, or the CheckoutUnreadable saying why it could not be read."""
    def read_it(nas: Nas) -> T | CheckoutUnreadable:
        try:
            return read(nas, fact)
        except CheckoutUnreadable as error:
            return error
    return read_it


CHECKOUT_COMMIT = Fact("checkout commit", lambda settings: commands.nas_head(settings.nas_app_dir),
                       readable("`git rev-parse HEAD`",
                                lambda out, settings: out.stdout.strip() if out.exited == 0 else ""),
                       ok=(0, 128, *commands.TIMED_OUT))

CHECKOUT_BRANCH = Fact("checkout branch", lambda settings: commands.nas_current_branch(settings.nas_app_dir),
                       readable("`git symbolic-ref HEAD`", lambda out, settings: out.stdout.strip()),
                       ok=(0, 1, 128, *commands.TIMED_OUT))

# Keys git may hold in the checkout's own config: what clone, fetch and branches write. Any
# other (hooks paths, filters, fsmonitor, includes, ssh commands, URL rewrites...) can make
# git run a program, and the app container can write that file.
SAFE_GIT_KEYS = re.compile(
    r"core\.(repositoryformatversion|filemode|bare|logallrefupdates|ignorecase|precomposeunicode|symlinks"
    r"|autocrlf|safecrlf|eol|quotepath|sharedrepository|checkstat|trustctime)"
    r"|remote\.[^\x00\n]+\.(url|fetch|pushurl|tagopt|prune|mirror)"
    r"|branch\.[^\x00\n]+\.(remote|merge|rebase)"
    r"|user\.(name|email)|pull\.(rebase|ff)|init\.defaultbranch|extensions\.objectformat")


def parse_git_config(out: Output, settings: Settings) -> list[str]:
    """The keys of the checkout's git config that are not on the allow-list."""
    keys = [line.strip().lower() for line in out.stdout.splitlines() if line.strip()]
    return sorted({key for key in keys if not SAFE_GIT_KEYS.fullmatch(key)})


CHECKOUT_CONFIG = Fact("checkout git config", lambda settings: commands.checkout_config(settings.nas_app_dir),
                       readable("`git config --list`", parse_git_config), ok=(0, 1, 128, *commands.TIMED_OUT))


# --- history --------------------------------------------------------------------------------------

def parse_releases(text: str) -> list[dict[str, str]]:
    """releases.tsv's lines, each by its column names (contract.env's RELEASES_COLUMNS)."""
    rows = [line.split("\t") for line in text.splitlines()]
    return [dict(zip(contract.RELEASES_COLUMNS, row)) for row in rows if len(row) == len(contract.RELEASES_COLUMNS)]


def releases(lines: int) -> Fact[list[dict[str, str]]]:
    return Fact("releases",
                lambda settings: commands.tail_file(commands.in_home(settings, contract.RELEASES_FILE), lines),
                lambda out, settings: parse_releases(out.stdout), ok=(0, 1))
