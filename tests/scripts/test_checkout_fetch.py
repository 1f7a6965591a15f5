"""export_commit fetches the commit from a checkout root does not own (the SSH user's, on the
NAS) with no git config of root's or anyone's to lean on: git drops its `-c` settings for the
upload-pack it runs in a local repository, so that one must be given its own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as the NAS scripts run")
def test_the_commit_is_fetched_from_a_checkout_root_does_not_own(tmp_path):
    checkout = tmp_path / "LOOP"
    subprocess.run(["git", "init", "-q", "-b", "main", str(checkout)], check=True)
    (checkout / "docker-compose.yml").write_text("services: {}\n")
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    shutil.chown(tmp_path, "nobody")
    subprocess.run(["chown", "-R", "nobody", str(checkout)], check=True)
    home = tmp_path / "home"
    (home / "scripts").mkdir(parents=True)
    for name in ("lib.sh", "lib-deploy.sh", "contract.env"):
        shutil.copy(REPO / "scripts" / name, home / "scripts" / name)
    done = subprocess.run(
        ["bash", "-c", f'. {home}/scripts/lib.sh && . {home}/scripts/lib-deploy.sh && APP_DIR={checkout} && export_commit {commit} && '
                       f'cat "$(export_dir)/docker-compose.yml"'],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "nohome")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "services: {}\n"
