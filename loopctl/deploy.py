"""rebuild, rollback, rebuild-all and releases: the verbs backed by the NAS scripts.

The scripts do the work on the NAS, detached from the SSH session (see
`scripts/detach.sh`); these functions check what must hold before starting, run the
script while streaming its log, and turn its exit status and summary line into the
verb's result.
"""

from __future__ import annotations

import re
import sys
import time

from . import commands, install
from .audit import performer
from .cli import Session
from .errors import ConfigError, Refused, RemoteFailed
from .stack import gather, live_color, refuse_during_deploy, table
from .sync import local_sync

# Exit statuses of the NAS scripts (see scripts/lib.sh).
USAGE, NOTHING_TO_ROLL_BACK, LOCKED = 64, 69, 75


def preflight(s: Session, allow_drift: bool) -> None:
    """Refuse before changing anything: drifted scripts, or another deploy running."""
    drift, _ = gather(s.nas, install.drift, refuse_during_deploy)
    if not install.is_in_sync(drift):
        message = f"the NAS scripts do not match this checkout: {install.describe_drift(drift)}"
        if not allow_drift or len(drift["missing"]) == drift["files"]:
            raise Refused(message + "; or pass --allow-drift to deploy with the NAS copies anyway")
        s.warn(message)


def script_flags(s: Session, verify_seconds: int) -> list[str]:
    return ["--performer", performer(), "--health-timeout", str(s.settings.deploy_health_timeout),
            "--verify-seconds", str(verify_seconds)]


def run_script(s: Session, name: str, flags: list[str]) -> dict[str, str]:
    """Run a NAS script detached, stream its log; returns the fields of its summary line."""
    try:
        result = s.nas.change(commands.run_script(s.settings, name, flags), stream=True, ok=None)
    except KeyboardInterrupt:
        print(f"\n{name} goes on on the NAS without this terminal; `inv status` shows when it is done",
              file=sys.stderr)
        raise
    if result is None:
        return {}
    reason = script_error(result.stdout + result.stderr) or result.tail(1)
    if result.exited in (LOCKED, NOTHING_TO_ROLL_BACK):
        raise Refused(reason)
    if result.exited == USAGE:
        raise ConfigError(f"{name}: {reason}")
    if result.exited != 0:
        raise RemoteFailed(f"{name} failed (exit {result.exited}): {reason}")
    return parse_summary(result.stdout)


def script_error(output: str) -> str:
    """The reason a NAS script gave for stopping: its last `ERROR: ` line."""
    errors = [line.removeprefix("ERROR: ") for line in output.splitlines() if line.startswith("ERROR: ")]
    return errors[-1] if errors else ""


def parse_summary(output: str) -> dict[str, str]:
    line = next((l for l in reversed(output.splitlines()) if l.startswith("summary: ")), "")
    return dict(re.findall(r"(\w+)=(\S+)", line))


def show_summary(s: Session, summary: dict[str, str], started: float, sync_seconds: float | None) -> None:
    if not summary:
        return
    s.say(f"==> {summary.get('old', '?')} -> {summary.get('new', '?')} on {summary.get('color', '?')} "
          f"in {time.monotonic() - started:.1f}s")
    timings = [("sync", f"{sync_seconds:.1f}s" if sync_seconds is not None else None)]
    timings += [(key, summary.get(key)) for key in ("build", "healthy", "switch", "verify")]
    s.say("    " + "  ".join(f"{key} {value}" for key, value in timings if value))


def rebuild(s: Session, sync: bool, allow_drift: bool) -> None:
    started = time.monotonic()
    preflight(s, allow_drift)
    sync_seconds = None
    if sync:
        local_sync(s)
        sync_seconds = time.monotonic() - started
    summary = run_script(s, "deploy-blue-green", script_flags(s, s.settings.deploy_verify_seconds))
    show_summary(s, summary, started, sync_seconds)


def rollback(s: Session, to: str | None) -> None:
    started = time.monotonic()
    if to is not None and not re.fullmatch(r"[0-9a-f]{4,40}", to):
        raise ConfigError(f"--to takes a commit id (4 to 40 hex digits), not {to!r}")
    preflight(s, allow_drift=True)
    flags = script_flags(s, s.settings.rollback_verify_seconds) + (["--to", to] if to else [])
    show_summary(s, run_script(s, "rollback", flags), started, None)


def confirm_rebuild_all(s: Session, yes: bool) -> None:
    if yes or s.dry:
        return
    if not sys.stdin.isatty():
        raise Refused("rebuild-all ends every session and replaces the OAuth keys; "
                      "without a terminal to ask, pass --yes")
    print("rebuild-all recreates the whole stack with NEW OAuth keys: every ChatGPT session ends and the")
    print("connector must authorize again. The old keys and oauth.db are backed up on the NAS first.")
    if input("Type 'rebuild-all' to continue: ").strip() != "rebuild-all":
        raise Refused("not confirmed; nothing changed")


def rebuild_all(s: Session, yes: bool, sync: bool) -> None:
    started = time.monotonic()
    confirm_rebuild_all(s, yes)
    preflight(s, allow_drift=False)
    if sync:
        local_sync(s)
    run_script(s, "rebuild-all", script_flags(s, s.settings.deploy_verify_seconds))
    if not s.dry:
        s.say(f"==> done in {time.monotonic() - started:.1f}s; to restore the old keys see README "
              f"'Restoring OAuth keys'")


def parse_releases(text: str) -> list[dict[str, str]]:
    fields = ("time", "kind", "commit", "image", "color", "performer")
    return [dict(zip(fields, line.split("\t"))) for line in text.splitlines() if line.count("\t") == 5]


def releases(s: Session, lines: int) -> None:
    out = s.nas.probe(commands.tail_file(commands.state(s.settings, "releases.tsv"), lines), ok=(0, 1))
    history = parse_releases(out.stdout)
    if not history:
        s.say("no releases recorded yet")
        return
    live = live_color(s.nas)
    rows = [("TIME", "KIND", "COMMIT", "COLOR", "BY")]
    rows += [(r["time"], r["kind"], r["commit"], r["color"], r["performer"]) for r in history]
    s.say(table(rows))
    s.say(f"live color now: {live or 'none'}")
