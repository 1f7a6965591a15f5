"""local-sync with real git repositories: a bare repository standing in for the git host, a
workstation clone, and a NAS clone reached over SSH (owned by the NAS user). Also `inv setup`
and drift detection."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from rig.sandbox import LOOPCTL_HOME, REPO, inv, sh


def git(repo, *args: str) -> str:
    """git as this test (root), also in the NAS clone that belongs to the NAS user."""
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", str(repo), *args], capture_output=True,
                          text=True, check=True).stdout.strip()


def commit_file(repo, name: str, text: str, message: str) -> str:
    (Path(repo) / name).write_text(text)
    git(repo, "add", name)
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repos(rig, tmp_path):
    """bare (the git host), local (workstation clone) and nas (clone in its own NAS_APP_DIR)."""
    name = uuid.uuid4().hex[:8]
    bare = Path(f"/srv/loop-rig/git/test-{name}.git")
    nas = Path(f"/srv/loop-rig/apps/{name}")
    local = tmp_path / "local"
    sh(f"git init -q --bare --initial-branch=main {bare} && git clone -q {bare} {local} 2>/dev/null")
    commit_file(local, "notes.md", "v1\n", "first")
    git(local, "push", "-q", "origin", "main")
    sh(f"mkdir -p {nas.parent} && git clone -q {bare} {nas} && chown -R nas:nas {nas}")
    env = {"LOCAL_REPO": str(local), "NAS_APP_DIR": str(nas)}
    yield bare, local, nas, env
    shutil.rmtree(nas, ignore_errors=True)
    shutil.rmtree(bare, ignore_errors=True)


def test_local_sync_pushes_and_fast_forwards_the_nas_and_dry_run_shows_both_sides(repos):
    bare, local, nas, env = repos
    old = git(local, "rev-parse", "HEAD")
    new = commit_file(local, "notes.md", "v2\n", "second")

    dry = inv("--dry", "local-sync", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"[local] git -C {local} push --porcelain origin refs/heads/main:refs/heads/main" in dry.stdout
    safe = ("git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c core.sshCommand=ssh -c credential.helper= "
            "-c protocol.ext.allow=never -c core.pager=cat -c maintenance.auto=false -c gc.auto=0")
    bound = "timeout --kill-after=5 30"  # a FIFO the app puts in the checkout's .git must not hang it
    assert f"[nas@127.0.0.1:2222] {bound} {safe} -C {nas} fetch --quiet --upload-pack=git-upload-pack origin +refs/heads/main:refs/remotes/origin/main" in dry.stdout
    assert f"[nas@127.0.0.1:2222] {bound} {safe} -C {nas} merge --ff-only origin/main" in dry.stdout
    assert git(bare, "rev-parse", "main") == old and git(nas, "rev-parse", "HEAD") == old

    result = inv("local-sync", env=env)
    assert result.returncode == 0, result.stderr
    assert git(bare, "rev-parse", "main") == new
    assert git(nas, "rev-parse", "HEAD") == new
    assert (nas / "notes.md").read_text() == "v2\n"
    assert f"local main: origin/main {old[:12]} -> {new[:12]}" in result.stdout
    assert f"NAS   main: {old[:12]} -> {new[:12]}" in result.stdout
    assert sh(f"stat -c %U {nas}/notes.md").stdout.strip() == "nas"


def test_uncommitted_local_changes_are_refused_and_listed(repos):
    bare, local, nas, env = repos
    before = git(bare, "rev-parse", "main")
    (local / "notes.md").write_text("edited, not committed\n")
    result = inv("local-sync", env=env)
    assert result.returncode == 7
    assert "uncommitted changes" in result.stderr and "notes.md" in result.stderr
    assert git(bare, "rev-parse", "main") == before


def test_a_rejected_push_says_to_pull_first(repos, tmp_path):
    bare, local, nas, env = repos
    other = tmp_path / "other"
    sh(f"git clone -q {bare} {other}")
    theirs = commit_file(other, "theirs.md", "x\n", "someone else")
    git(other, "push", "-q", "origin", "main")
    commit_file(local, "mine.md", "y\n", "mine")
    result = inv("local-sync", env=env)
    assert result.returncode == 7
    assert "pull (or rebase) first" in result.stderr
    assert git(bare, "rev-parse", "main") == theirs
    assert not (nas / "theirs.md").exists()


def test_a_nas_change_that_the_update_would_overwrite_is_refused_and_kept(repos):
    bare, local, nas, env = repos
    before = git(nas, "rev-parse", "HEAD")
    sh(f"sudo -u nas sh -c 'echo written by the app on the NAS > {nas}/notes.md'")
    commit_file(local, "notes.md", "v2 from the workstation\n", "conflicting")
    result = inv("local-sync", env=env)
    assert result.returncode == 7
    assert "would overwrite local changes on the NAS" in result.stderr and "notes.md" in result.stderr
    assert (nas / "notes.md").read_text() == "written by the app on the NAS\n"
    assert git(nas, "rev-parse", "HEAD") == before
    assert git(nas, "stash", "list") == ""


def test_untracked_vault_files_on_the_nas_are_kept_and_the_pull_proceeds(repos):
    bare, local, nas, env = repos
    sh(f"sudo -u nas sh -c 'mkdir -p {nas}/vault && echo 42 > {nas}/vault/memory.json'")
    new = commit_file(local, "code.py", "print('new')\n", "code")
    result = inv("local-sync", env=env)
    assert result.returncode == 0, result.stderr
    assert git(nas, "rev-parse", "HEAD") == new
    assert (nas / "vault" / "memory.json").read_text() == "42\n"


def test_setup_installs_atomically_and_status_reports_drift_after_a_local_edit(repos, tmp_path):
    _, _, nas, env = repos
    exclude = (nas / ".git" / "info" / "exclude").read_text()
    setup = inv("setup", env=env)
    assert setup.returncode == 0, setup.stderr
    home = LOOPCTL_HOME
    assert sh(f"cd {home} && sha256sum --check --quiet MANIFEST").returncode == 0
    assert sh(f"stat -c '%U %a' {home}/scripts/deploy-blue-green.sh").stdout.strip() == "root 755"
    # Nothing is written into the app checkout.
    assert (nas / ".git" / "info" / "exclude").read_text() == exclude
    assert git(nas, "status", "--porcelain") == "" and not (nas / ".loopctl").exists()
    status = json.loads(inv("status", "--json", env=env).stdout)
    assert status["scripts"]["missing"] == [] and status["scripts"]["changed"] == []

    # A checkout of this project whose rollback.sh was edited after setup.
    copy = tmp_path / "project"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv", ".git", ".state", "__pycache__"))
    with (copy / "scripts" / "rollback.sh").open("a") as script:
        script.write("# a local edit\n")
    drifted = inv("status", env=env, cwd=copy)
    assert "DRIFT: scripts/rollback.sh differs (run `inv setup`)" in drifted.stdout, drifted.stderr
    refused = inv("rebuild", "--no-sync", env=env, cwd=copy)
    assert refused.returncode == 7 and "--allow-drift" in refused.stderr
