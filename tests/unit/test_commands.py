"""The exact command lines loopctl runs: what `inv --dry` prints is asserted here."""

import pytest

from loopctl import commands, settings
from loopctl.runner import Nas


@pytest.fixture
def s(tmp_path):
    return settings.load({"LOOP_ENV_FILE": str(tmp_path / "none"), "NAS_HOST": "nas", "NAS_USER": "ops",
                          "NAS_APP_DIR": "/volume1/app"})


D = "/var/packages/ContainerManager/target/usr/bin/docker"


def test_docker_commands_use_the_configured_binary(s):
    assert commands.restart(s, "loop-api-blue") == [D, "restart", "loop-api-blue"]
    assert commands.stop(s, "loop-api-green") == [D, "stop", "loop-api-green"]
    assert commands.logs(s, "loop-api-blue", 50) == [D, "logs", "--tail", "50", "loop-api-blue"]
    assert commands.logs(s, "loop-auth", 10, since="10m", follow=True) == [
        D, "logs", "--tail", "10", "--since", "10m", "--follow", "loop-auth"]
    assert commands.health_of(s, "loop-api-blue") == [
        D, "inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
        "loop-api-blue"]
    assert commands.inspect_stack(s)[-4:] == ["loop-proxy", "loop-api-blue", "loop-api-green", "loop-auth"]


def test_nas_paths_and_scripts(s):
    assert commands.state(s, "deploy.lock") == "/volume1/app/.loopctl/state/deploy.lock"
    assert commands.lock_is_free(s) == ["flock", "--nonblock", "--conflict-exit-code", "75",
                                        "/volume1/app/.loopctl/state/deploy.lock", "true"]
    assert commands.run_script(s, "rollback", ["--to", "abc1"]) == [
        "/volume1/app/.loopctl/scripts/detach.sh", "rollback", "--to", "abc1"]
    assert commands.audit_append(s, '{"verb": "stop"}') == [
        "/volume1/app/.loopctl/scripts/audit-append.sh", '{"verb": "stop"}']
    assert commands.install_bundle(s, "/tmp/up.1") == ["bash", "/tmp/up.1/scripts/install.sh", "/volume1/app/.loopctl"]
    with pytest.raises(ValueError):
        commands.run_script(s, "rm", [])


def test_git_commands(s):
    assert commands.dirty_files("/w") == ["git", "-C", "/w", "status", "--porcelain", "--untracked-files=no"]
    assert commands.push("/w", "origin", "main") == [
        "git", "-C", "/w", "push", "--porcelain", "origin", "refs/heads/main:refs/heads/main"]
    assert commands.fetch("/volume1/app", "origin", "main") == [
        "git", "-C", "/volume1/app", "fetch", "--quiet", "origin", "+refs/heads/main:refs/remotes/origin/main"]
    assert commands.fast_forward("/volume1/app", "origin", "main") == [
        "git", "-C", "/volume1/app", "merge", "--ff-only", "origin/main"]


def test_sudo_wrapping_puts_the_password_nowhere_in_the_line(s):
    with_password = settings.load({"LOOP_ENV_FILE": "/dev/null", "NAS_HOST": "nas", "NAS_USER": "ops",
                                   "NAS_SUDO_PASSWORD": "hunter2 'x'"})
    line = Nas(with_password).command_line([D, "ps"], sudo=True)
    assert line == f"sudo --stdin '--prompt=[loopctl] sudo password:' -- {D} ps"
    assert Nas(s).command_line([D, "ps"], sudo=True) == f"sudo --non-interactive -- {D} ps"
    assert Nas(s).command_line(["cat", "/a b"], sudo=False) == "cat '/a b'"
