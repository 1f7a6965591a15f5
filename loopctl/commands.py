"""Every command loopctl runs, as data: functions that return argv lists.

Nothing here runs, prints or connects; `runner.py` does that. Keeping the two apart
means the exact command lines are asserted in unit tests, and what `inv --dry` shows
is by construction what runs.
"""

from __future__ import annotations

from typing import Sequence

from .settings import Settings

Argv = list[str]

COLORS = ("blue", "green")
SERVICES = ("api", "auth", "proxy")
STACK_CONTAINERS = ("loop-proxy", "loop-api-blue", "loop-api-green", "loop-auth")
CHANGE_SCRIPTS = ("deploy-blue-green", "rollback", "rebuild-all")


# --- where things live on the NAS -------------------------------------------------------

def home(s: Settings) -> str:
    return f"{s.nas_app_dir}/.loopctl"


def state(s: Settings, name: str) -> str:
    return f"{home(s)}/state/{name}"


def script(s: Settings, name: str) -> str:
    return f"{home(s)}/scripts/{name}.sh"


def container(service: str, color: str) -> str:
    return f"loop-api-{color}" if service == "api" else f"loop-{service}"


# --- docker --------------------------------------------------------------------------------

def docker(s: Settings, *args: str) -> Argv:
    return [s.nas_docker, *args]


INSPECT_FORMAT = ("{{.Name}}\t{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{end}}"
                  "\t{{.Config.Image}}\t{{.State.StartedAt}}")


def inspect_stack(s: Settings) -> Argv:
    """One line per existing container; missing ones make docker exit 1 (expected)."""
    return docker(s, "inspect", "--format", INSPECT_FORMAT, *STACK_CONTAINERS)


def health_of(s: Settings, name: str) -> Argv:
    return docker(s, "inspect", "--format",
                  "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}", name)


def logs(s: Settings, name: str, tail: int, since: str | None = None, follow: bool = False) -> Argv:
    return docker(s, "logs", "--tail", str(tail), *(["--since", since] if since else []),
                  *(["--follow"] if follow else []), name)


def restart(s: Settings, name: str) -> Argv:
    return docker(s, "restart", name)


def stop(s: Settings, name: str) -> Argv:
    return docker(s, "stop", name)


# --- NAS state files (world-readable, read as the SSH user) ----------------------------------

def read(path: str) -> Argv:
    return ["cat", "--", path]


def tail_file(path: str, lines: int) -> Argv:
    return ["tail", "-n", str(lines), "--", path]


def lock_is_free(s: Settings) -> Argv:
    """Exit 75 when a deploy holds the lock; 0 when free, 66 when no deploy ever ran."""
    return ["flock", "--nonblock", "--conflict-exit-code", "75", state(s, "deploy.lock"), "true"]


def checksums(paths: Sequence[str]) -> Argv:
    return ["sha256sum", "--", *paths]


# --- the NAS scripts (run as root) --------------------------------------------------------------

def run_script(s: Settings, name: str, flags: Sequence[str]) -> Argv:
    """A change script, detached on the NAS so a dropped SSH session cannot cut it short."""
    if name not in CHANGE_SCRIPTS:
        raise ValueError(name)
    return [script(s, "detach"), name, *flags]


def audit_append(s: Settings, record: str) -> Argv:
    return [script(s, "audit-append"), record]


def make_upload_dir() -> Argv:
    return ["mktemp", "-d", "/tmp/loopctl-setup.XXXXXX"]


def unpack(archive: str, into: str) -> Argv:
    return ["tar", "-xf", archive, "-C", into]


def install_bundle(s: Settings, unpacked: str) -> Argv:
    """Through bash: the upload folder may sit on a noexec /tmp."""
    return ["bash", f"{unpacked}/scripts/install.sh", home(s)]


def remove_upload_dir(path: str) -> Argv:
    return ["rm", "-rf", "--", path]


# --- git, on either side ---------------------------------------------------------------------------

def git(repo: str, *args: str) -> Argv:
    return ["git", "-C", repo, *args]


def dirty_files(repo: str) -> Argv:
    return git(repo, "status", "--porcelain", "--untracked-files=no")


def head(repo: str) -> Argv:
    return git(repo, "rev-parse", "HEAD")


def resolve(repo: str, ref: str) -> Argv:
    return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")


def current_branch(repo: str) -> Argv:
    return git(repo, "symbolic-ref", "--quiet", "--short", "HEAD")


def push(repo: str, remote: str, branch: str) -> Argv:
    return git(repo, "push", "--porcelain", remote, f"refs/heads/{branch}:refs/heads/{branch}")


def fetch(repo: str, remote: str, branch: str) -> Argv:
    return git(repo, "fetch", "--quiet", remote, f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}")


def fast_forward(repo: str, remote: str, branch: str) -> Argv:
    return git(repo, "merge", "--ff-only", f"{remote}/{branch}")
