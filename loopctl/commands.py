"""Every command loopctl runs, as data: functions that return argv lists.

Nothing here runs, prints or connects; the runners (`runner.py`, `ssh.py`) do that.
Keeping the two apart means the exact command lines are asserted in unit tests, and
what `inv --dry` shows is by construction what runs. Paths on the NAS come from `scripts/contract.env`, which
the scripts there read too.
"""

from __future__ import annotations

from typing import Sequence

from . import contract
from .settings import Settings

Argv = list[str]

SERVICES = ("api", "auth", "proxy")

# The NAS scripts, each named once. The change scripts run detached (detach.sh); the others
# answer at once.
DEPLOY_SCRIPT = "deploy-blue-green.sh"
ROLLBACK_SCRIPT = "rollback.sh"
REBUILD_ALL_SCRIPT = "rebuild-all.sh"
DETACH_SCRIPT = "detach.sh"
PREPARE_SCRIPT = "prepare.sh"
FACTS_SCRIPT = "facts.sh"
AUDIT_SCRIPT = "audit-append.sh"
INSTALL_SCRIPT = "install.sh"
RESTART_SCRIPT = "restart.sh"
CHANGE_SCRIPTS = (DEPLOY_SCRIPT, ROLLBACK_SCRIPT, REBUILD_ALL_SCRIPT, RESTART_SCRIPT)


# --- where things live on the NAS -------------------------------------------------------

def home(settings: Settings) -> str:
    return settings.nas_loopctl_dir


def in_home(settings: Settings, relative: str) -> str:
    """A path under the loopctl home, from its name in contract.env (`contract.RELEASES_FILE`...)."""
    return f"{home(settings)}/{relative}"


def script(settings: Settings, name: str) -> str:
    return in_home(settings, f"{contract.SCRIPTS_DIR}/{name}")


def container(settings: Settings, service: str, color: str | None = None) -> str:
    """The stack's container for `api` (a color), `proxy`; other services are found by label."""
    if service == "api":
        return contract.api_container(settings.api_service, color)
    if service == "proxy":
        return contract.PROXY_CONTAINER
    raise ValueError(service)


# --- docker --------------------------------------------------------------------------------

def docker(settings: Settings, *args: str) -> Argv:
    return [settings.nas_docker, *args]


def logs(settings: Settings, name: str, tail: int, since: str | None = None, follow: bool = False) -> Argv:
    return docker(settings, "logs", "--tail", str(tail), *(["--since", since] if since else []),
                  *(["--follow"] if follow else []), name)


def stop(settings: Settings, name: str) -> Argv:
    return docker(settings, "stop", name)


# --- NAS state files (world-readable, read as the SSH user) ----------------------------------

def tail_file(path: str, lines: int) -> Argv:
    return ["tail", "-n", str(lines), "--", path]


def run_logs(settings: Settings) -> Argv:
    """The change scripts' run logs (detach.sh names them UTC-time-script-pid.log: in time order)."""
    return ["ls", "-1", "--", in_home(settings, contract.RUNS_DIR)]


def run_log(settings: Settings, run: str, lines: int) -> Argv:
    """One run's log: its last `lines` lines, or all of it (0)."""
    return ["tail", "-n", str(lines) if lines else "+1", "--", in_home(settings, f"{contract.RUNS_DIR}/{run}.log")]


def checksums(paths: Sequence[str]) -> Argv:
    return ["sha256sum", "--", *paths]


# --- the NAS scripts (run as root) --------------------------------------------------------------

def facts(settings: Settings, *args: str) -> Argv:
    """Read-only facts only root can read (status, the lock, waiting for health)."""
    return [script(settings, FACTS_SCRIPT), *args]


def prepare(settings: Settings, commit: str) -> Argv:
    return [script(settings, PREPARE_SCRIPT), "--commit", commit]


def detach(settings: Settings, name: str, flags: Sequence[str]) -> Argv:
    """A change script, detached on the NAS so a dropped SSH session cannot cut it short."""
    if name not in CHANGE_SCRIPTS:
        raise ValueError(name)
    return [script(settings, DETACH_SCRIPT), name.removesuffix(".sh"), *flags]


def restart(settings: Settings, performer: str, health_timeout: int) -> Argv:
    """The live api container restarted by restart.sh, under the deploy lock and with a deploy's checks."""
    return detach(settings, RESTART_SCRIPT, ["--performer", performer, "--health-timeout", str(health_timeout)])


def audit_append(settings: Settings, record: str) -> Argv:
    return [script(settings, AUDIT_SCRIPT), record]


def make_upload_dir(purpose: str) -> Argv:
    """A private folder of the SSH user's (mktemp makes it mode 700)."""
    return ["mktemp", "-d", f"/tmp/loopctl-{purpose}.XXXXXX"]


def unpack(archive: str, into: str) -> Argv:
    return ["tar", "-xf", archive, "-C", into]


def install_bundle(settings: Settings, unpacked: str) -> Argv:
    """Through bash: the upload folder may sit on a noexec /tmp."""
    return ["bash", f"{unpacked}/{contract.SCRIPTS_DIR}/{INSTALL_SCRIPT}", home(settings), settings.nas_app_dir]


def remove_upload_dir(path: str) -> Argv:
    return ["rm", "-rf", "--", path]


# --- git, on either side ---------------------------------------------------------------------------

def git(repo: str, *args: str) -> Argv:
    return ["git", "-C", repo, *args]


# In the NAS checkout the app writes .git too: git runs there (as the SSH user, never root) with
# hooks, fsmonitor, ssh commands, credential helpers and the ext transport forced off, after
# its config passed `checkout_config` (see sync.py), and within a bound: a FIFO there blocks a
# read forever.
NAS_GIT_SAFETY = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.sshCommand=ssh",
                  "-c", "credential.helper=", "-c", "protocol.ext.allow=never", "-c", "core.pager=cat",
                  "-c", "maintenance.auto=false", "-c", "gc.auto=0")


# What GNU timeout exits with when the bound ran out (137: the command ignored SIGTERM and was killed).
TIMED_OUT = (124, 137)


def bounded(seconds: int, argv: Sequence[str]) -> Argv:
    """argv under GNU timeout, which ends it and every process it started (its process group)."""
    return ["timeout", "--kill-after=5", str(seconds), *argv]


def nas_git(repo: str, *args: str, seconds: int = contract.CHECKOUT_READ_TIMEOUT) -> Argv:
    return bounded(seconds, ["git", *NAS_GIT_SAFETY, "-C", repo, *args])


def checkout_config(repo: str) -> Argv:
    """The keys of the checkout's own git config, one a line (reading it runs nothing)."""
    return bounded(contract.CHECKOUT_READ_TIMEOUT, ["git", "-C", repo, "config", "--local", "--list", "--name-only"])


def dirty_files(repo: str) -> Argv:
    return git(repo, "status", "--porcelain", "--untracked-files=no")


def head(repo: str) -> Argv:
    return git(repo, "rev-parse", "HEAD")


def nas_head(repo: str) -> Argv:
    return nas_git(repo, "rev-parse", "HEAD")


def resolve(repo: str, ref: str) -> Argv:
    return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")


def current_branch(repo: str) -> Argv:
    return git(repo, "symbolic-ref", "--quiet", "--short", "HEAD")


def nas_current_branch(repo: str) -> Argv:
    return nas_git(repo, "symbolic-ref", "--quiet", "--short", "HEAD")


def push(repo: str, remote: str, branch: str) -> Argv:
    return git(repo, "push", "--porcelain", remote, f"refs/heads/{branch}:refs/heads/{branch}")


def fetch(repo: str, remote: str, branch: str) -> Argv:
    # --upload-pack: the program git runs for a local remote is never the config's.
    return nas_git(repo, "fetch", "--quiet", "--upload-pack=git-upload-pack", remote,
                   f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}", seconds=contract.CHECKOUT_FETCH_TIMEOUT)


def fast_forward(repo: str, remote: str, branch: str) -> Argv:
    return nas_git(repo, "merge", "--ff-only", f"{remote}/{branch}", seconds=contract.CHECKOUT_FETCH_TIMEOUT)
