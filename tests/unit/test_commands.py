"""The exact command lines loopctl runs: what `inv --dry` prints is asserted here."""

import pytest

from loopctl import commands, contract, settings as settings_module
from loopctl.ssh import Nas


@pytest.fixture
def settings(tmp_path):
    return settings_module.load({"LOOP_ENV_FILE": "/dev/null", "NAS_HOST": "nas", "NAS_USER": "ops",
                          "NAS_APP_DIR": "/volume1/app"})


D = "/var/packages/ContainerManager/target/usr/bin/docker"


def test_docker_commands_use_the_configured_binary(settings):
    assert commands.stop(settings, "loop-api-green") == [D, "stop", "loop-api-green"]
    assert commands.logs(settings, "loop-api-blue", 50) == [D, "logs", "--tail", "50", "loop-api-blue"]
    assert commands.logs(settings, "loop-auth", 10, since="10m", follow=True) == [
        D, "logs", "--tail", "10", "--since", "10m", "--follow", "loop-auth"]
    assert commands.container(settings, "api", "green") == "loop-api-green"
    assert commands.container(settings, "proxy") == "loop-proxy"


def test_nas_paths_and_scripts(settings):
    H = "/volume1/@loopctl"
    assert commands.in_home(settings, contract.RELEASES_FILE) == f"{H}/state/releases.tsv"
    assert commands.facts(settings, "lock") == [f"{H}/scripts/facts.sh", "lock"]
    assert commands.prepare(settings, "ab" * 20) == [f"{H}/scripts/prepare.sh", "--commit", "ab" * 20]
    assert commands.detach(settings, commands.ROLLBACK_SCRIPT, ["--to", "abc1"]) == [
        f"{H}/scripts/detach.sh", "rollback", "--to", "abc1"]
    assert commands.detach(settings, commands.DEPLOY_SCRIPT, []) == [f"{H}/scripts/detach.sh", "deploy-blue-green"]
    assert commands.audit_append(settings, '{"verb": "stop"}') == [f"{H}/scripts/audit-append.sh", '{"verb": "stop"}']
    assert commands.install_bundle(settings, "/tmp/up.1") == ["bash", "/tmp/up.1/scripts/install.sh", H, "/volume1/app"]
    assert commands.make_upload_dir("release") == ["mktemp", "-d", "/tmp/loopctl-release.XXXXXX"]
    with pytest.raises(ValueError):
        commands.detach(settings, "rm", [])


def test_restart_runs_the_restart_script_detached_with_the_performer_and_the_health_bound(settings):
    H = "/volume1/@loopctl"
    assert commands.restart(settings, "Ann <ann@example.com>", 120) == [
        f"{H}/scripts/detach.sh", "restart", "--performer", "Ann <ann@example.com>", "--health-timeout", "120"]
    assert commands.RESTART_SCRIPT in commands.CHANGE_SCRIPTS


def test_git_commands(settings):
    assert commands.dirty_files("/w") == ["git", "-C", "/w", "status", "--porcelain", "--untracked-files=no"]
    assert commands.push("/w", "origin", "main") == [
        "git", "-C", "/w", "push", "--porcelain", "origin", "refs/heads/main:refs/heads/main"]
    safe = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.sshCommand=ssh",
            "-c", "credential.helper=", "-c", "protocol.ext.allow=never", "-c", "core.pager=cat",
            "-c", "maintenance.auto=false", "-c", "gc.auto=0"]
    # Every git in the NAS checkout is bounded: the app can put a FIFO in its .git.
    fetch_bound, read_bound = ["timeout", "--kill-after=5", "30"], ["timeout", "--kill-after=5", "10"]
    assert commands.fetch("/volume1/app", "origin", "main") == [
        *fetch_bound, "git", *safe, "-C", "/volume1/app", "fetch", "--quiet", "--upload-pack=git-upload-pack", "origin",
        "+refs/heads/main:refs/remotes/origin/main"]
    assert commands.fast_forward("/volume1/app", "origin", "main") == [
        *fetch_bound, "git", *safe, "-C", "/volume1/app", "merge", "--ff-only", "origin/main"]
    assert commands.nas_head("/volume1/app") == [*read_bound, "git", *safe, "-C", "/volume1/app", "rev-parse", "HEAD"]
    assert commands.nas_current_branch("/volume1/app") == [
        *read_bound, "git", *safe, "-C", "/volume1/app", "symbolic-ref", "--quiet", "--short", "HEAD"]
    assert commands.checkout_config("/volume1/app") == [
        *read_bound, "git", "-C", "/volume1/app", "config", "--local", "--list", "--name-only"]


def test_sudo_wrapping_puts_the_password_nowhere_in_the_line(settings):
    with_password = settings_module.load({"LOOP_ENV_FILE": "/dev/null", "NAS_HOST": "nas", "NAS_USER": "ops",
                                   "NAS_SUDO_PASSWORD": "hunter2 'x'"})
    line = Nas(with_password).command_line([D, "ps"], sudo=True)
    assert line == f"sudo --stdin '--prompt=[loopctl <random>] sudo password:' -- {D} ps"
    assert Nas(settings).command_line([D, "ps"], sudo=True) == f"sudo --non-interactive -- {D} ps"
    assert Nas(settings).command_line(["cat", "/a b"], sudo=False) == "cat '/a b'"


def test_the_nginx_conf_installed_holds_drain_seconds(tmp_path):
    from loopctl import bundle, contract
    from loopctl import settings as settings_module

    default = settings_module.load({"LOOP_ENV_FILE": "/dev/null"})
    shipped = (bundle.PROJECT_DIR / bundle.NGINX_CONF).read_text()
    # The file in the repository is the default, so it is a valid nginx.conf as it stands.
    assert bundle.nginx_conf(default) == shipped
    assert f"worker_shutdown_timeout {contract.DRAIN_SECONDS}s;" in shipped
    short = settings_module.load({"LOOP_ENV_FILE": "/dev/null", "DRAIN_SECONDS": "30"})
    assert "worker_shutdown_timeout 30s;" in bundle.nginx_conf(short)
    assert bundle.nginx_conf(short).replace("30s;", "600s;") == shipped
    # The MCP location is the path the gate checks; the upstream file is where the proxy sees it.
    assert f"location {contract.APP_MCP_PATH} {{" in shipped
    assert f"include {contract.PROXY_LIVE_MOUNT}/{contract.UPSTREAM_FILE.rsplit('/', 1)[1]};" in shipped
    assert "KEEP_WARM=1" in bundle.stack_env(default) and "KEEP_WARM=0" in bundle.stack_env(
        settings_module.load({"LOOP_ENV_FILE": "/dev/null", "KEEP_WARM": "0"}))
