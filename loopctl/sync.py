"""`inv local-sync`: workstation -> git remote -> NAS checkout, fast-forward only.

The NAS checkout is also where the app writes its vault, so it may hold files nobody
committed: git's own fast-forward keeps every untracked or unaffected file, and refuses
(listing the files) where the update would overwrite a local change. Nothing on the NAS
is ever reset, stashed or discarded. The app can write the checkout's `.git` too, so git
runs there as the SSH user only, with hooks and the like forced off, only after the
checkout's git config passed an allow-list (`facts.CHECKOUT_CONFIG`), and each time within a
bound (a FIFO there would block it forever): a read that runs out of time refuses the sync.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import commands, contract
from .errors import Refused, RemoteFailed
from .facts import CHECKOUT_BRANCH, CHECKOUT_COMMIT, CHECKOUT_CONFIG, checkout_blocked, read
from .session import Session
from .stack import refuse_during_deploy


@dataclass(frozen=True)
class Synced:
    branch: str
    pushed_from: str
    pushed_to: str
    nas_from: str
    nas_to: str


def listed_files(git_message: str) -> list[str]:
    """The tab-indented file names git prints under 'would be overwritten by merge'."""
    return [line.strip() for line in git_message.splitlines() if line.startswith("\t")]


def short(commit: str) -> str:
    return commit[:12] if commit else "none"


def local_sync(session: Session) -> Synced:
    """Five steps: which branch, is the local tree clean, is the NAS checkout ready, push, fast-forward."""
    branch = branch_to_sync(session)
    local_head, remote_before = clean_local_head(session, branch)
    nas_before = ready_nas_checkout(session, branch)
    push(session, branch, local_head)
    nas_after = fast_forward_nas(session, branch, local_head, nas_before)
    synced = Synced(branch, remote_before, local_head, nas_before, nas_after)
    if not session.dry:
        session.say(f"    local {branch}: {session.settings.git_remote}/{branch} {short(synced.pushed_from)} -> "
              f"{short(synced.pushed_to)}")
        session.say(f"    NAS   {branch}: {short(synced.nas_from)} -> {short(synced.nas_to)}")
    return synced


def branch_to_sync(session: Session) -> str:
    repo = str(session.settings.local_repo)
    branch = session.settings.git_branch or session.local.probe(commands.current_branch(repo),
                                                                 ok=(0, 1, 128)).stdout.strip()
    if not branch:
        raise Refused(f"{repo} is not on a branch (detached HEAD or not a git repository); set GIT_BRANCH")
    return branch


def clean_local_head(session: Session, branch: str) -> tuple[str, str]:
    """The commit to push (refusing a dirty tree), and where the remote branch was before."""
    repo = str(session.settings.local_repo)
    dirty = session.local.probe(commands.dirty_files(repo)).stdout.splitlines()
    if dirty:
        raise Refused(f"{repo} has uncommitted changes; commit or stash them first: "
                      + ", ".join(line[3:] for line in dirty))
    local_head = session.local.probe(commands.head(repo)).stdout.strip()
    remote_before = session.local.probe(commands.resolve(repo, f"{session.settings.git_remote}/{branch}"),
                                        ok=(0, 1)).stdout.strip()
    return local_head, remote_before


def ready_nas_checkout(session: Session, branch: str) -> str:
    """No deploy running, a git config git may run with, the same branch; returns its commit."""
    refuse_during_deploy(session.nas)
    refuse_unsafe_git_config(session)
    nas_branch = read(session.nas, CHECKOUT_BRANCH)
    if nas_branch != branch:
        raise Refused(f"the NAS checkout {session.settings.nas_app_dir} is on {nas_branch or 'no branch'!r}, not "
                      f"{branch!r}; switch it there by hand (loopctl never changes branches on the NAS)")
    return read(session.nas, CHECKOUT_COMMIT)


def push(session: Session, branch: str, local_head: str) -> None:
    remote = session.settings.git_remote
    session.say(f"==> pushing {branch} ({short(local_head)}) to {remote}")
    pushed = session.local.change(commands.push(str(session.settings.local_repo), remote, branch), ok=(0, 1))
    if pushed and pushed.exited != 0:
        if "[rejected]" in pushed.stdout or "rejected" in pushed.stderr:
            raise Refused(f"{remote} rejected the push: it has commits you do not have; pull (or rebase) "
                          f"first, then run again")
        raise RemoteFailed(f"git push to {remote} failed: {pushed.tail()}")


def fast_forward_nas(session: Session, branch: str, local_head: str, nas_before: str) -> str:
    """Fetch and fast-forward only; returns the NAS checkout's commit afterwards."""
    app, remote = session.settings.nas_app_dir, session.settings.git_remote
    session.say(f"==> fast-forwarding the NAS checkout {app}")
    fetched = session.nas.change(commands.fetch(app, remote, branch), sudo=False, ok=(0, *commands.TIMED_OUT))
    if fetched and fetched.exited != 0:
        raise checkout_blocked(session.settings, "`git fetch`", contract.CHECKOUT_FETCH_TIMEOUT,
                               f"the git remote {remote} answers too slowly, or ")
    merged = session.nas.change(commands.fast_forward(app, remote, branch), sudo=False,
                                ok=(0, 1, 128, *commands.TIMED_OUT))
    if merged and merged.exited in commands.TIMED_OUT:
        raise checkout_blocked(session.settings, "`git merge --ff-only`", contract.CHECKOUT_FETCH_TIMEOUT)
    if merged and merged.exited != 0:
        files = listed_files(merged.stderr + merged.stdout)
        if files:
            raise Refused(f"the update would overwrite local changes on the NAS, so nothing there changed: "
                          f"{', '.join(files)} (commit, move or remove them on the NAS yourself)")
        raise Refused(f"the NAS checkout cannot fast-forward to {remote}/{branch}: {merged.tail(2)}")
    if session.dry:
        return nas_before
    nas_after = read(session.nas, CHECKOUT_COMMIT)
    if nas_after != local_head:
        raise RemoteFailed(f"the NAS checkout is at {short(nas_after)}, not the pushed {short(local_head)}")
    return nas_after


def refuse_unsafe_git_config(session: Session) -> None:
    """The app can write the checkout's .git/config; keys outside the allow-list could make git run
    a program as the SSH user, who has sudo."""
    unsafe = read(session.nas, CHECKOUT_CONFIG)
    if unsafe:
        raise Refused(f"the NAS checkout's git config ({session.settings.nas_app_dir}/.git/config) has keys loopctl "
                      f"will not run git with: {', '.join(unsafe)}; remove them on the NAS (`git config --unset KEY`) "
                      f"after checking who put them there")
