"""Every shell script in the repository passes shellcheck (with .shellcheckrc)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*REPO.glob("scripts/*.sh"), *REPO.glob("rig/*.sh"), *REPO.glob("*.sh"), *REPO.glob("docs/*.sh"),
                  REPO / ".ci" / "run"])


def test_there_are_scripts_to_check():
    assert len(SCRIPTS) >= 12


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is installed by rig/install-packages.sh")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shellcheck(script):
    result = subprocess.run(["shellcheck", "--external-sources", str(script)], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout
