"""The verbs: `inv status`, `inv logs --tail 100`, `inv rebuild`, ...

This file is the table of verbs and their flags; the logic lives in `loopctl/`.
Modules are imported inside each verb so `inv --list` and the HTTP-only checks
start without loading the SSH libraries. `inv --dry VERB` prints every command
that would change the NAS instead of running it; `inv --echo VERB` prints each
command as it runs.
"""

import sys

from invoke import Task, task


# --- Looking: nothing here changes the NAS ---

@task
def config(c):
    """Show the effective settings and where each came from; secrets redacted."""
    from loopctl.cli import load_settings

    rows = load_settings("config").redacted()
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        print(f"{name:<{width}}  {value}  [{source}]")


@task(help={"json": "print machine-readable JSON instead of the table"})
def status(c, json=False):
    """Live color, every container of the stack (state, health, image, uptime), deployed commit, script drift."""
    from loopctl import cli, stack

    with cli.session(c, "status", changes=False) as session:
        stack.status(session, as_json=json)


@task(help={
    "tail": "lines to show from the end of the log (default 50)",
    "follow": "keep streaming new lines until Ctrl-C",
    "since": "only lines newer than this: a duration (10m, 2h, 1d) or a date (2026-11-25)",
    "service": "api (default), auth or proxy",
    "color": "blue or green: an api color other than the live one",
})
def logs(c, tail="50", follow=False, since=None, service="api", color=None):
    """Show container logs; by default the live api container's last 50 lines."""
    from loopctl import cli, stack
    from loopctl.settings import count

    with cli.session(c, "logs", changes=False) as session:
        stack.logs(session, tail=count(tail, "--tail"), follow=follow, since=since, service=service, color=color)


@task(help={"lines": "how many releases (default 20)"})
def releases(c, lines="20"):
    """The release history on the NAS: deploys, rollbacks and rebuild-alls, newest last."""
    from loopctl import cli, deploy
    from loopctl.settings import count

    with cli.session(c, "releases", changes=False) as session:
        deploy.releases(session, lines=count(lines, "--lines"))


@task(name="run-log", help={
    "id": "the run id a change verb printed (`... runs on the NAS as ID`); default: the newest run",
    "tail": "only the last N lines (default 0: the whole log)",
})
def run_log(c, id=None, tail="0"):
    """The whole log of the newest rebuild, rollback, rebuild-all or restart run on the NAS (kept 30 days)."""
    from loopctl import cli, deploy
    from loopctl.settings import count

    with cli.session(c, "run-log", changes=False) as session:
        deploy.run_log(session, id, lines=count(tail, "--tail"))


@task(help={"lines": "how many records (default 20)", "local": "show this workstation's copy instead of the NAS's"})
def audit(c, lines="20", local=False):
    """Show the latest audit records: who changed what on the NAS, when, and how it ended."""
    from loopctl import audit, cli
    from loopctl.settings import count

    with cli.session(c, "audit", changes=False, nas=not local) as session:
        audit.show(session, lines=count(lines, "--lines"), local=local)


# --- Changing: each leaves an audit record; `inv --dry` shows the commands instead ---

@task(help={"timeout": "seconds to wait for Docker to report it healthy (0, the default: DEPLOY_HEALTH_TIMEOUT; "
                       "at most DEPLOY_HEALTH_TIMEOUT's maximum)"})
def restart(c, timeout="0"):
    """Restart the live api container under the deploy lock and wait until it is healthy (it is down meanwhile)."""
    from loopctl import cli, deploy
    from loopctl.settings import count

    with cli.session(c, "restart", {"timeout": timeout}, changes=True) as session:
        deploy.restart(session, count(timeout, "--timeout", like="DEPLOY_HEALTH_TIMEOUT")
                       or session.settings.deploy_health_timeout)


@task
def stop(c):
    """Stop the live api container (the service goes down) and say how to bring it back."""
    from loopctl import cli, stack

    with cli.session(c, "stop", changes=True) as session:
        stack.stop(session)


@task(name="local-sync")
def local_sync(c):
    """Push the local branch, then fast-forward the NAS checkout to it (never resets anything there)."""
    from loopctl import cli, sync

    with cli.session(c, "local-sync", changes=True) as session:
        sync.local_sync(session)


# What a change verb prints: by default its steps and one summary line (the NAS run's full
# output stays in its run log: `inv run-log`); these two flags change that (loopctl/runlog.py).
SHOWN_FLAGS = {
    "verbose": "show everything the NAS run prints (Compose, BuildKit), not only its steps",
    "json": "print one JSON object with the result (steps, timings, a failure's last lines) and nothing else",
}


@task(help={
    "no_sync": "skip local-sync: deploy this checkout's HEAD, which the NAS checkout must already have",
    "allow_drift": "deploy even though the NAS scripts differ from this checkout's (warns)",
    "allow_tool_removal": "deploy even though the new release lists fewer MCP tools than the live one",
    **SHOWN_FLAGS,
})
def rebuild(c, no_sync=False, allow_drift=False, allow_tool_removal=False, verbose=False, json=False):
    """Zero-downtime blue-green deploy: local-sync, build the idle color, check its MCP, switch once it is healthy."""
    from loopctl import cli, deploy, runlog

    flags = {"no_sync": no_sync, "allow_drift": allow_drift, "allow_tool_removal": allow_tool_removal}
    with runlog.reported("rebuild", verbose, json) as report, \
            cli.session(c, "rebuild", flags, changes=True) as session:
        report.attach(session)
        deploy.rebuild(session, sync=not no_sync, allow_drift=allow_drift, allow_tool_removal=allow_tool_removal)


@task(help={"to": "a kept release's commit id (see `inv releases`) instead of the previous one", **SHOWN_FLAGS})
def rollback(c, to=None, verbose=False, json=False):
    """Switch back to the previous release (a switch while it runs as the warm standby), or --to an older one."""
    from loopctl import cli, deploy, runlog

    to = to.lower() if to else to  # a commit id in either case; git and the NAS's records write it lower
    with runlog.reported("rollback", verbose, json) as report, \
            cli.session(c, "rollback", {"to": to}, changes=True) as session:
        report.attach(session)
        deploy.rollback(session, to=to)


@task(name="rebuild-all", help={
    "yes": "do not ask (required without a terminal, and with --json)",
    "no_sync": "skip local-sync first",
    **SHOWN_FLAGS,
})
def rebuild_all(c, yes=False, no_sync=False, verbose=False, json=False):
    """Recreate the whole stack with NEW OAuth keys (ends every session); backs the old keys up first."""
    from loopctl import cli, deploy, runlog

    with runlog.reported("rebuild-all", verbose, json) as report, \
            cli.session(c, "rebuild-all", {"yes": yes, "no_sync": no_sync}, changes=True) as session:
        report.attach(session)
        deploy.rebuild_all(session, yes=yes, sync=not no_sync)


@task
def setup(c):
    """Install the NAS scripts into NAS_LOOPCTL_DIR (root's alone; checked), moving an old NAS_APP_DIR/.loopctl there (needs full sudo)."""
    from loopctl import cli, install

    with cli.session(c, "setup", changes=True) as session:
        install.setup(session)


# --- Checks: HTTP only, plugin exit codes 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN ---

CHECK_VERBS = {"health", "mcp-check"}

CHECK_FLAGS = {
    "url": "base URL to check instead of PUBLIC_URL, e.g. https://mcp.example.com",
    "timeout": "seconds per HTTP request (overrides CHECK_TIMEOUT, default 5)",
    "json": "print one JSON object instead of the status line",
    "quiet": "print nothing when OK, so cron mails only on trouble",
}


@task(help={
    **CHECK_FLAGS,
    "retries": "retries with backoff after a failed /health request (overrides CHECK_RETRIES, default 2)",
    "no_alert": "check only: leave the state file alone, send no webhook alert and no ping",
})
def health(c, url=None, timeout=None, retries=None, json=False, quiet=False, no_alert=False):
    """Check /health, the JWKS and the certificate; alert on state changes (for cron).

    Prints one monitoring-plugin line; exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad settings).
    """
    from invoke import Exit

    from loopctl.checks import cli

    raise Exit(code=cli.health(url=url, timeout=timeout, retries=retries,
                               as_json=json, quiet=quiet, alert=not no_alert))


@task(help=CHECK_FLAGS)
def mcp_check(c, url=None, timeout=None, json=False, quiet=False):
    """Speak MCP to the endpoint as ChatGPT would: transport, handshake, tools, OAuth discovery.

    Prints one monitoring-plugin line; exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad settings).
    """
    from invoke import Exit

    from loopctl.checks import cli

    raise Exit(code=cli.mcp(url=url, timeout=timeout, as_json=json, quiet=quiet))


# A flag error (`inv status --bogus`, `inv logs --tail`) is bad input, exit 2 in one line, and in
# a check verb its UNKNOWN line and exit 3: Invoke's own would exit 1 before the task runs, which
# a script reads as an error of the verb and a monitor as WARNING (loopctl/flags.py). The change
# verbs that print one JSON object are the ones with SHOWN_FLAGS.
from loopctl.flags import refuse_bad_flags  # noqa: E402 (needs only Invoke, loaded already)

_TASKS = [value for value in list(globals().values()) if isinstance(value, Task)]
refuse_bad_flags(sys.argv, _TASKS, checks=CHECK_VERBS,
                 reported=[t.name for t in _TASKS if SHOWN_FLAGS.items() <= t.help.items()])
