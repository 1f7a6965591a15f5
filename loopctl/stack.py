"""The everyday verbs on the running stack: status, logs, stop (restart runs a NAS script: deploy.py).

They read facts (`facts.py`) and change things only through `nas.change`; presentation
(the status table, uptimes) is kept in small pure functions, unit-tested without a NAS.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from dataclasses import asdict
from datetime import datetime, timezone

from . import commands, contract
from .errors import CheckoutUnreadable, ConfigError, Locked, Refused, RemoteFailed
from .facts import (CHECKOUT_COMMIT, CHECKOUT_CONFIG, DRIFT, LOCK, STATUS, Container, NasState, describe_drift, gather,
                    or_unreadable, read)
from .session import Session
from .ssh import Nas


def uptime(started_at: str, now: datetime) -> str:
    """'2d 3h', '5h 12m', '4m 10s' from Docker's RFC 3339 StartedAt."""
    try:
        started = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", started_at).replace("Z", "+00:00"))
    except ValueError:
        return "-"
    seconds = int((now - started).total_seconds())
    if seconds < 0 or started.year < 2000:
        return "-"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def refuse_during_deploy(nas: Nas) -> None:
    """Changes to the stack wait for a running deploy, rollback or rebuild-all."""
    holder = read(nas, LOCK)
    if holder:
        raise Locked(holder)


def live_container(session: Session, state: NasState | None = None) -> str:
    state = state or read(session.nas, STATUS)
    if state.live == "app":
        if state.app_container:
            return state.app_container
    if state.live not in contract.COLORS:
        raise Refused("nothing is live yet (no deploy has switched nginx): run `inv rebuild` first")
    return commands.container(session.settings, "api", state.live)


def problems(state: NasState, session: Session) -> list[str]:
    """What `inv status` must not keep quiet about."""
    found = [f"the loopctl home is not safe: {p}" for p in state.home_problems]
    found += [f"the NAS lacks: {p}" for p in state.tool_problems]
    if state.upstream != "ok" and state.live != "app" and any(c.name == contract.PROXY_CONTAINER
                                                            for c in state.containers):
        found.append(f"the upstream file {contract.UPSTREAM_FILE} is {state.upstream}: nginx keeps the last one "
                     f"it loaded; the next `inv rebuild` or `inv rollback` writes it again")
    proxy = next((c for c in state.containers if c.name == contract.PROXY_CONTAINER), None)
    if state.live in contract.COLORS:
        if proxy is None or proxy.state != "running":
            found.append(f"the proxy {contract.PROXY_CONTAINER} is {proxy.state if proxy else 'missing'}: nothing "
                         f"serves port traffic; `inv rebuild` or `inv rollback` brings it back")
        live = next((c for c in state.containers
                     if c.name == commands.container(session.settings, "api", state.live)), None)
        standby = standby_serving(state, session)
        if (live is None or live.state != "running") and standby:
            found.append(f"the live color's container is {live.state if live else 'missing'}: the proxy sends its "
                         f"requests to the warm standby {standby.name} (commit {standby.commit}), which serves them; "
                         f"`inv rollback` makes it live, `inv rebuild` deploys in {state.live}'s place")
        elif live is None or live.state != "running":
            found.append(f"the live color's container is {live.state if live else 'missing'}: `inv rollback` or "
                         f"`inv rebuild` puts a release back")
    if state.journal and not state.lock:
        found.append(f"a {state.journal.get('op', 'change')} was cut short at step {state.journal.get('step', '?')} "
                     f"and could not finish or undo itself: the next `inv rebuild` or `inv rollback` repairs it "
                     f"first")
    return found


def standby_serving(state: NasState, session: Session) -> Container | None:
    """The warm standby's container when it serves in the live color's place: the live one does
    not run, and the proxy sends what it cannot take to the standby (deploy/nginx/nginx.conf)."""
    if state.live not in contract.COLORS or not state.standby:
        return None
    by_name = {c.name: c for c in state.containers}
    live = by_name.get(commands.container(session.settings, "api", state.live))
    standby = by_name.get(commands.container(session.settings, "api", state.standby))
    if (live is None or live.state != "running") and standby is not None and standby.state == "running":
        return standby
    return None


def describe_oauth(session: Session, state: NasState) -> str:
    """Where the OAuth keys and database live: the volume they were moved to, or not yet."""
    if state.oauth.get("volume"):
        where = f"volume {state.oauth['volume']} (moved from {state.oauth.get('from', '?')} at {state.oauth.get('at', '?')})"
        return where + ("; the app's own container reads the folder" if state.live == "app" else "")
    return f"the app's folder for {session.settings.api_oauth_path}: the next `inv rebuild` moves it into a volume"


def status(session: Session, as_json: bool) -> None:
    state, checkout, drift, git_config = gather(session.nas, STATUS, or_unreadable(CHECKOUT_COMMIT), DRIFT,
                                                or_unreadable(CHECKOUT_CONFIG))
    # A checkout whose .git blocks reads: its commit is unknown, and why is a problem.
    unreadable = next((str(v) for v in (checkout, git_config) if isinstance(v, CheckoutUnreadable)), "")
    checkout = "" if isinstance(checkout, CheckoutUnreadable) else checkout
    git_config = [] if isinstance(git_config, CheckoutUnreadable) else git_config
    live = None
    if state.live in contract.COLORS:
        live = next((c for c in state.containers
                     if c.name == commands.container(session.settings, "api", state.live)), None)
    now = datetime.now(timezone.utc)
    trouble = problems(state, session)
    if unreadable:
        trouble.append(unreadable)
    if git_config:
        trouble.append(f"the checkout's git config has keys loopctl refuses to run git with: {', '.join(git_config)}")
    standby = None
    if state.standby:
        standby = next((c for c in state.containers
                        if c.name == commands.container(session.settings, "api", state.standby)), None)
    report = {
        "host": session.nas.where,
        "app_dir": session.settings.nas_app_dir,
        "loopctl_dir": session.settings.nas_loopctl_dir,
        "live_color": state.live,
        "deployed_commit": live.commit if live else None,
        "standby_color": state.standby,
        "standby_commit": standby.commit if standby else None,
        "standby_serving": standby_serving(state, session) is not None,
        "open_streams": state.streams,
        "oauth_state": state.oauth or None,
        "checkout_commit": checkout or None,
        "deploy_in_progress": state.lock,
        "scripts": drift,
        "problems": trouble,
        "containers": [{**asdict(c), "uptime": uptime(c.started_at, now) if c.state == "running" else None}
                       for c in state.containers],
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return
    shown_live = {"app": f"app ({state.app_container or '?'}, the app's own compose container; `inv rebuild` "
                         f"takes over its port)"}.get(
        state.live or "", state.live)
    session.say(f"NAS        {report['host']}  {report['app_dir']}  (loopctl: {report['loopctl_dir']})")
    serving_instead = standby_serving(state, session)
    session.say(f"live       {shown_live or 'none'}" + (f"  commit {live.commit}" if live else "")
                + (f"  (down: the standby {serving_instead.name} serves)" if serving_instead else ""))
    session.say(f"standby    {describe_standby(session, state, standby)}")
    session.say(f"oauth      {describe_oauth(session, state)}")
    shown_checkout = checkout[:12] if checkout else "not a git checkout"
    session.say(f"checkout   {'unknown (its .git blocks reads: see PROBLEM)' if unreadable else shown_checkout}")
    session.say(f"scripts    {describe_drift(drift)}")
    session.say(f"deploy     {'running: ' + state.lock if state.lock else 'idle'}")
    for problem in trouble:
        session.say(f"PROBLEM    {problem}")
    rows = [("CONTAINER", "STATE", "HEALTH", "IMAGE", "UP", "STREAMS")]
    rows += [(c["name"] + (" *" if live and c["name"] == live.name else ""), c["state"], c["health"],
              c["image"], c["uptime"] or "-", str(state.streams.get(c["name"], "-"))) for c in report["containers"]]
    session.say()
    session.say(table(rows))
    if not state.containers:
        session.say("(no LOOP containers on the NAS yet)")


def describe_standby(session: Session, state: NasState, standby: Container | None) -> str:
    """The color a session the live one does not know is sent to (KEEP_WARM), and whether it runs."""
    if not state.standby:
        return "none"
    name = commands.container(session.settings, "api", state.standby)
    if standby is None or standby.state != "running":
        return (f"{name} ({standby.state if standby else 'missing'}): sessions it held get 404 and start over; "
                f"the next deploy replaces it")
    return f"{name}  commit {standby.commit}, running: the sessions it holds go on; `inv rollback` is a switch"


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def log_target(session: Session, service: str, color: str | None) -> str:
    if service not in commands.SERVICES:
        raise ConfigError(f"--service must be one of {', '.join(commands.SERVICES)}, not {service!r}")
    if color is not None and color not in contract.COLORS:
        raise ConfigError(f"--color must be blue or green, not {color!r}")
    if color is not None and service != "api":
        raise ConfigError("--color applies to --service api only")
    if service == "proxy":
        return contract.PROXY_CONTAINER
    if service == "api":
        return commands.container(session.settings, "api", color) if color else live_container(session)
    state = read(session.nas, STATUS)
    found = next((c.name for c in state.containers if c.service == session.settings.auth_service), None)
    if not found:
        raise Refused(f"no container of the {session.settings.auth_service!r} service (AUTH_SERVICE) on the NAS")
    return found


SINCE = re.compile(r"[0-9]+[smhd]|[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:.]+Z?)?")


def is_since(since: str) -> bool:
    """A duration, or a date (and time) that exists: docker takes 2026-13-45 and shows nothing."""
    if not SINCE.fullmatch(since):
        return False
    if since[-1] in "smhd":
        return True
    try:
        datetime.fromisoformat(since.removesuffix("Z"))
    except ValueError:
        return False
    return True


def logs(session: Session, tail: int, follow: bool, since: str | None, service: str, color: str | None) -> None:
    if since is not None and not is_since(since):
        raise ConfigError(f"--since takes a duration like 10m, 2h, 1d or a date like 2026-11-25, not {since!r}")
    name = log_target(session, service, color)
    argv = commands.logs(session.settings, name, tail, since, follow)
    if not follow:
        out = session.nas.probe(argv, sudo=True)
        sys.stdout.write(out.stdout + out.stderr)
        return
    interrupted = False

    def on_interrupt(signum, frame):
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = session.nas.follow(argv, sudo=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        print(f"\n(stopped following {name})", file=sys.stderr)
    elif result.exited != 0:
        raise RemoteFailed(f"`docker logs` for {name} exited {result.exited}: {result.tail()}")


def stop(session: Session) -> None:
    refuse_during_deploy(session.nas)
    name = live_container(session)
    session.say(f"==> stopping {name}: the service is down until it starts again")
    session.nas.change(commands.stop(session.settings, name))
    if not session.dry:
        session.say(f"==> {name} stopped. Bring it back with `inv restart` (or `inv rollback` for the other color).")
