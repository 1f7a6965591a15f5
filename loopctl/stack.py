"""The everyday verbs on the running stack: status, logs, restart, stop.

Parsing is kept in small pure functions (unit-tested without a NAS); the verbs read
facts through `nas.probe` and change things only through `nas.change`.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from . import commands, install
from .cli import Session
from .errors import ConfigError, Refused, RemoteFailed
from .runner import Nas


@dataclass(frozen=True)
class Container:
    name: str
    state: str
    health: str
    image: str
    started_at: str

    @property
    def commit(self) -> str:
        return self.image.rpartition(":")[2] if self.name.startswith("loop-api-") else ""


def parse_inspect(text: str) -> list[Container]:
    containers = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 5:
            name, state, health, image, started = fields
            # Docker keeps the last health status of a stopped container; it means nothing then.
            health = health if state == "running" and health else "-"
            containers.append(Container(name.lstrip("/"), state, health, image, started))
    return containers


def parse_live_color(upstream_conf: str) -> str | None:
    match = re.search(r"^\s*default loop-api-(blue|green):", upstream_conf, re.MULTILINE)
    return match.group(1) if match else None


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


# --- facts ------------------------------------------------------------------------------------

def live_color(nas: Nas) -> str | None:
    out = nas.probe(commands.read(commands.state(nas.settings, "nginx/upstream.conf")), ok=(0, 1))
    return parse_live_color(out.stdout)


def containers(nas: Nas) -> list[Container]:
    return parse_inspect(nas.probe(commands.inspect_stack(nas.settings), sudo=True, ok=(0, 1)).stdout)


def deploy_in_progress(nas: Nas) -> str | None:
    """Who holds the deploy lock, or None when it is free."""
    held = nas.probe(commands.lock_is_free(nas.settings), ok=(0, 1, 66, 75)).exited == 75
    if not held:
        return None
    info = nas.probe(commands.read(commands.state(nas.settings, "deploy.lock.info")), ok=(0, 1)).stdout.strip()
    return info or "a deploy is running"


def refuse_during_deploy(nas: Nas) -> None:
    """Changes to the stack wait for a running deploy, rollback or rebuild-all."""
    holder = deploy_in_progress(nas)
    if holder:
        raise Refused(f"a deploy is already running: {holder}")


def live_container(nas: Nas) -> str:
    color = live_color(nas)
    if color is None:
        raise Refused("nothing is live yet (no deploy has switched nginx): run `inv rebuild` first")
    return commands.container("api", color)


# --- verbs -------------------------------------------------------------------------------------

def checkout_commit(nas: Nas) -> str:
    return nas.probe(commands.head(nas.settings.nas_app_dir), ok=(0, 128)).stdout.strip()


def gather(nas: Nas, *facts: Callable[[Nas], Any]) -> list[Any]:
    """Read several facts at once: each is its own channel on the one SSH connection, so a
    verb waits for the slowest probe instead of the sum of them. A fact that raises, raises here."""
    nas.connection  # open it once, before the threads share it
    with ThreadPoolExecutor(len(facts)) as pool:
        futures = [pool.submit(fact, nas) for fact in facts]
    return [future.result() for future in futures]


def status(s: Session, as_json: bool) -> None:
    nas = s.nas
    color, found, checkout, drift, lock = gather(nas, live_color, containers, checkout_commit, install.drift,
                                                 deploy_in_progress)
    live = next((c for c in found if color and c.name == commands.container("api", color)), None)
    now = datetime.now(timezone.utc)
    report = {
        "host": nas.where,
        "app_dir": nas.settings.nas_app_dir,
        "live_color": color,
        "deployed_commit": live.commit if live else None,
        "checkout_commit": checkout or None,
        "deploy_in_progress": lock,
        "scripts": drift,
        "containers": [{**asdict(c), "uptime": uptime(c.started_at, now) if c.state == "running" else None}
                       for c in found],
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return
    s.say(f"NAS        {report['host']}  {report['app_dir']}")
    s.say(f"live       {color or 'none'}" + (f"  commit {live.commit}" if live else ""))
    s.say(f"checkout   {checkout[:12] if checkout else 'not a git checkout'}")
    s.say(f"scripts    {install.describe_drift(drift)}")
    s.say(f"deploy     {'running: ' + lock if lock else 'idle'}")
    rows = [("CONTAINER", "STATE", "HEALTH", "IMAGE", "UP")]
    rows += [(c["name"] + (" *" if live and c["name"] == live.name else ""), c["state"], c["health"],
              c["image"], c["uptime"] or "-") for c in report["containers"]]
    s.say()
    s.say(table(rows))
    if not found:
        s.say("(no LOOP containers on the NAS yet)")


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def log_target(nas: Nas, service: str, color: str | None) -> str:
    if service not in commands.SERVICES:
        raise ConfigError(f"--service must be one of {', '.join(commands.SERVICES)}, not {service!r}")
    if color is not None and color not in commands.COLORS:
        raise ConfigError(f"--color must be blue or green, not {color!r}")
    if color is not None and service != "api":
        raise ConfigError("--color applies to --service api only")
    if service != "api":
        return commands.container(service, "")
    return commands.container("api", color) if color else live_container(nas)


SINCE = re.compile(r"\d+[smhd]|\d{4}-\d\d-\d\d(T[\d:.]+Z?)?")


def logs(s: Session, tail: int, follow: bool, since: str | None, service: str, color: str | None) -> None:
    if since is not None and not SINCE.fullmatch(since):
        raise ConfigError(f"--since takes a duration like 10m, 2h, 1d or a date like 2026-11-25, not {since!r}")
    name = log_target(s.nas, service, color)
    argv = commands.logs(s.settings, name, tail, since, follow)
    if not follow:
        out = s.nas.probe(argv, sudo=True)
        sys.stdout.write(out.stdout + out.stderr)
        return
    interrupted = False

    def on_interrupt(signum, frame):
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = s.nas.follow(argv, sudo=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        print(f"\n(stopped following {name})", file=sys.stderr)
    elif result.exited != 0:
        raise RemoteFailed(f"`docker logs` for {name} exited {result.exited}: {result.tail()}")


def wait_healthy(s: Session, name: str, timeout: float) -> None:
    """Poll Docker's view of the container every second, showing each change."""
    started, last = time.monotonic(), None
    while True:
        health = s.nas.probe(commands.health_of(s.settings, name), sudo=True).stdout.strip()
        waited = time.monotonic() - started
        if health != last:
            s.say(f"    {name}: {health} ({waited:.0f}s)")
            last = health
        if health in ("healthy", "running"):
            return
        if health in ("unhealthy", "exited", "dead") or waited > timeout:
            raise RemoteFailed(f"{name} is {health} after {waited:.0f}s; see `inv logs`")
        time.sleep(1)


def restart(s: Session, timeout: float) -> None:
    refuse_during_deploy(s.nas)
    name = live_container(s.nas)
    s.say(f"==> restarting {name}")
    s.nas.change(commands.restart(s.settings, name))
    if s.dry:
        return
    wait_healthy(s, name, timeout)
    s.say(f"==> {name} is healthy")


def stop(s: Session) -> None:
    refuse_during_deploy(s.nas)
    name = live_container(s.nas)
    s.say(f"==> stopping {name}: the service is down until it starts again")
    s.nas.change(commands.stop(s.settings, name))
    if not s.dry:
        s.say(f"==> {name} stopped. Bring it back with `inv restart` (or `inv rollback` for the other color).")
