"""rebuild, rollback, rebuild-all, restart and releases: the verbs backed by the NAS scripts.

A deploy has two halves. First `prepare.sh` exports the commit on the NAS and resolves the
app's own compose file with Compose; `stackdef` turns that into the release's stack
definition, which is uploaded next to nothing else (a private temporary folder of the SSH
user). Then the change script runs on the NAS detached from the SSH session (see
`scripts/detach.sh`) while its log streams here, shown as `runlog` decides (its steps by
default); its exit status and summary fields become the verb's result.
"""

from __future__ import annotations

import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

from . import commands, contract, runlog, stackdef
from .audit import performer
from .errors import ConfigError, Locked, LoopError, Refused
from .facts import DRIFT, PREFLIGHT, STATUS, describe_drift, gather, is_in_sync, read, releases as releases_fact
from .session import Session
from .stack import table
from .sync import local_sync


def check_drift(session: Session, drift: dict, allow_drift: bool, installed: bool = True) -> None:
    """Refuse (or, allowed, warn about) NAS scripts that differ from this checkout's."""
    if not is_in_sync(drift) or not installed:
        message = f"the NAS scripts do not match this checkout: {describe_drift(drift)}"
        if not allow_drift or len(drift["missing"]) == drift["files"]:
            raise Refused(message + "; or pass --allow-drift to deploy with the NAS copies anyway")
        session.warn(message)


def preflight(session: Session, allow_drift: bool) -> None:
    """Refuse before changing anything: drifted scripts, another change running, a NAS that
    lacks a tool or whose loopctl home is not root's alone."""
    drift, state = gather(session.nas, DRIFT, PREFLIGHT)
    check_drift(session, drift, allow_drift, state.installed)
    if state.lock:
        raise Locked(state.lock)
    if state.home_problems:
        raise Refused(f"the loopctl home is not safe for root: {state.home_problems[0]} (run `inv setup`)")
    if state.tool_problems:
        raise Refused(f"the NAS lacks what the scripts use: {'; '.join(state.tool_problems)}")


def script_flags(session: Session, verify_seconds: int) -> list[str]:
    return ["--performer", performer(), "--health-timeout", str(session.settings.deploy_health_timeout),
            "--verify-seconds", str(verify_seconds)]


def run_script(session: Session, name: str, flags: list[str]) -> dict[str, str]:
    """Run a NAS change script detached, stream its log; returns the fields of its summary line."""
    return run_detached(session, name, commands.detach(session.settings, name, flags))


def run_detached(session: Session, name: str, argv: list[str]) -> dict[str, str]:
    """run_script, for argv built by `commands` (detach.sh NAME FLAGS...). A verb with a report
    (rebuild, rollback, rebuild-all) shows the run through its View; others the whole log."""
    view = session.report.view() if session.report else None
    try:
        result = session.nas.change(argv, stream=True, ok=None, sink=view)
    except BaseException as error:
        # No progress line drawn over the error that follows (the connection lost, Ctrl-C...).
        if view:
            view.stop()
        if isinstance(error, KeyboardInterrupt):
            print(f"\n{name} goes on on the NAS without this terminal; `inv status` shows when it is done",
                  file=sys.stderr)
        raise
    if result is None:
        return {}
    if view:
        view.ended(result.exited)
    if result.exited != 0:
        raise runlog.script_failure(name, result)
    return runlog.parse_summary(result.stdout)


def show_summary(session: Session, summary: dict[str, str], started: float, sync_seconds: float | None) -> None:
    """The verb's one summary line (with --json, its part of the object instead)."""
    if session.report:
        session.report.sync_seconds = sync_seconds
    # detach.sh's own fields (run, log) come with every run; a change that changed nothing (a
    # rollback that was the repair of a deploy cut short) says so in its steps, with no summary.
    if "new" in summary:
        session.say(runlog.summary_line(session.verb, summary, time.monotonic() - started, sync_seconds))


# --- the release definition ---------------------------------------------------------------------

def commit_to_deploy(session: Session, sync: bool) -> str:
    """The full commit id, always from this workstation: what local-sync pushed, or with
    --no-sync this checkout's HEAD (the NAS checkout must already have it). Never the NAS
    checkout's HEAD: the app writes that .git. The NAS builds exactly this commit."""
    if sync:
        return local_sync(session).pushed_to
    commit = session.local.probe(commands.head(str(session.settings.local_repo)), ok=(0, 128)).stdout.strip()
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise Refused(f"{session.settings.local_repo} is not a git checkout with a commit (LOCAL_REPO)")
    return commit


def prepare_release(session: Session, commit: str) -> stackdef.Release | None:
    """Resolve the app's compose file at `commit` on the NAS and write this release's stack from it."""
    if session.report:
        session.report.commit = commit
    result = session.nas.change(commands.prepare(session.settings, commit), ok=None)
    if result is None:
        return None
    if result.exited != 0:
        raise runlog.script_failure(commands.PREPARE_SCRIPT, result)
    release = stackdef.build_release(stackdef.parse_prepared(result.stdout), session.settings, commit)
    for note in release.notes:
        session.say(f"    {note}")
    return release


@contextmanager
def uploaded(session: Session, release: stackdef.Release | None) -> Iterator[str]:
    """The release definition in a private temporary folder of the SSH user's, for the script to
    copy into the loopctl home; removed afterwards. It holds the app's environment, so it never
    touches the workstation's disk."""
    made = session.nas.change(commands.make_upload_dir("release"), sudo=False)
    folder = made.stdout.strip() if made else "/tmp/loopctl-release.XXXXXX"
    try:
        for name in (contract.RELEASE_STACK_FILE, contract.RELEASE_ENV_FILE):
            if release is None:  # --dry: prepare.sh did not run, so there is nothing to write yet
                session.nas.show(["sftp-put", f"<{name} from the resolved compose file>", f"{folder}/{name}"],
                                 sudo=False)
            else:
                content = release.stack_json() if name == contract.RELEASE_STACK_FILE else release.release_env()
                session.nas.put_bytes(content.encode(), f"{folder}/{name}")
        yield folder
    finally:
        session.nas.change(commands.remove_upload_dir(folder), sudo=False)


def change_flags(session: Session, commit: str, folder: str) -> list[str]:
    return ["--commit", commit, "--release", folder, "--build-timeout", str(session.settings.deploy_build_timeout)]


# --- the verbs ------------------------------------------------------------------------------------

def rebuild(session: Session, sync: bool, allow_drift: bool, allow_tool_removal: bool = False) -> None:
    started = time.monotonic()
    preflight(session, allow_drift)
    commit = commit_to_deploy(session, sync)
    sync_seconds = time.monotonic() - started if sync else None
    release = prepare_release(session, commit)
    with uploaded(session, release) as folder:
        summary = run_script(session, commands.DEPLOY_SCRIPT,
                             script_flags(session, session.settings.deploy_verify_seconds)
                             + change_flags(session, commit, folder)
                             + (["--allow-tool-removal"] if allow_tool_removal else []))
    show_summary(session, summary, started, sync_seconds)


def rollback(session: Session, to: str | None) -> None:
    started = time.monotonic()
    if to is not None and not re.fullmatch(r"[0-9a-f]{4,40}", to):
        raise ConfigError(f"--to takes a commit id (4 to 40 hex digits), not {to!r}")
    # No preflight: rollback.sh checks the lock and the home itself. The scripts' drift only
    # warns here (a rollback runs the NAS copies), so it is read on its own channel while the
    # script runs: the previous release serves a round trip sooner.
    flags = script_flags(session, session.settings.rollback_verify_seconds) + (["--to", to] if to else [])
    session.nas.connection  # noqa: B018 (opened once, before two channels share it)
    with ThreadPoolExecutor(1) as pool:
        drift = pool.submit(read, session.nas, DRIFT)
        try:
            summary = run_script(session, commands.ROLLBACK_SCRIPT, flags)
        finally:
            # Not installed at all: that is why the script could not run, and what to say. The
            # read failing says nothing of the rollback: a warning, never its outcome.
            try:
                seen = drift.result()
            except LoopError as error:
                session.warn(f"could not compare the NAS scripts with this checkout: {error}")
            else:
                check_drift(session, seen, allow_drift=True)
    show_summary(session, summary, started, None)


def restart(session: Session, timeout: int) -> None:
    """The live api container restarted by restart.sh with a deploy's checks: this preflight, then on
    the NAS the lock, the repair of a change cut short and its mount sources; waited until healthy."""
    preflight(session, allow_drift=False)
    run_detached(session, commands.RESTART_SCRIPT, commands.restart(session.settings, performer(), timeout))


def confirm_rebuild_all(session: Session, yes: bool) -> None:
    if yes or session.dry:
        return
    if not sys.stdin.isatty() or (session.report and session.report.as_json):
        raise Refused("rebuild-all ends every session and replaces the OAuth keys; "
                      "without a terminal to ask, pass --yes")
    print("rebuild-all recreates the whole stack with NEW OAuth keys: every ChatGPT session ends and the")
    print("connector must authorize again. The old keys and oauth.db are backed up on the NAS first.")
    if input("Type 'rebuild-all' to continue: ").strip() != "rebuild-all":
        raise Refused("not confirmed; nothing changed")


def rebuild_all(session: Session, yes: bool, sync: bool) -> None:
    started = time.monotonic()
    confirm_rebuild_all(session, yes)
    preflight(session, allow_drift=False)
    commit = commit_to_deploy(session, sync)
    release = prepare_release(session, commit)
    with uploaded(session, release) as folder:
        summary = run_script(session, commands.REBUILD_ALL_SCRIPT,
                             script_flags(session, session.settings.deploy_verify_seconds)
                             + change_flags(session, commit, folder))
    show_summary(session, summary, started, None)


def releases(session: Session, lines: int) -> None:
    history, state = gather(session.nas, releases_fact(lines), STATUS)
    if not history:
        session.say("no releases recorded yet")
        return
    rows = [("TIME", "KIND", "COMMIT", "COLOR", "BY")]
    rows += [(r["time"], r["kind"], r["commit"], r["color"], r["performer"]) for r in history]
    session.say(table(rows))
    session.say(f"live color now: {state.live or 'none'}")


RUN_ID = r"\d{8}T\d{6}Z-[a-z-]+-\d+"


def run_log(session: Session, run: str | None, lines: int) -> None:
    """A change script's whole run log as it is on the NAS (kept 30 days): the newest, or `run`."""
    if run is not None and not re.fullmatch(RUN_ID, run):
        raise ConfigError(f"--id takes a run id as the verbs print it (e.g. 20261202T041351Z-deploy-blue-green-"
                          f"29812), not {run!r}")
    listed = session.nas.probe(commands.run_logs(session.settings), ok=(0, 2)).stdout.split()
    runs = sorted(name.removesuffix(".log") for name in listed if re.fullmatch(RUN_ID + r"\.log", name))
    if run is None and not runs:
        raise Refused("no run logs on the NAS yet (a rebuild, rollback, rebuild-all or restart writes one)")
    run = run or runs[-1]
    if run not in runs:
        raise ConfigError(f"no run log {run} on the NAS (logs are kept 30 days; `inv run-log` shows the newest)")
    text = session.nas.probe(commands.run_log(session.settings, run, lines)).stdout
    session.say(f"==> {run} ({commands.in_home(session.settings, contract.RUNS_DIR)}/{run}.log)")
    session.say(text.rstrip("\n"))
