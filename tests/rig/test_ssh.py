"""The security baseline, on the real sshd and sudo of the sandbox NAS: pinned host keys,
the sudo password never exposed, one connection per verb, clear errors and exit codes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rig.sandbox import LOOPCTL_HOME, NASBOT_ENV, NAS_ENV, REPO, RIG_STATE, inv, inv_env, sh, sudo_password

SSHD_LOG = RIG_STATE / "sshd.log"


def test_unknown_host_key_is_refused_with_its_fingerprint_and_how_to_pin(rig, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = inv("status", env={"NAS_KNOWN_HOSTS": str(empty)})
    assert result.returncode == 5
    fingerprint = sh(f"ssh-keygen -lf {RIG_STATE}/ssh_host_ed25519_key.pub").stdout.split()[1]
    assert fingerprint in result.stderr
    assert "ssh-keyscan" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_changed_host_key_is_refused(rig, tmp_path):
    other = tmp_path / "other_key"
    sh(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:2222 {' '.join(Path(f'{other}.pub').read_text().split()[:2])}\n")
    result = inv("status", env={"NAS_KNOWN_HOSTS": str(known)})
    assert result.returncode == 5
    assert "CHANGED" in result.stderr and "refusing" in result.stderr


@pytest.mark.parametrize("env, code, message", [
    ({"NAS_KNOWN_HOSTS": "/nonexistent/known_hosts"}, 5, "/nonexistent/known_hosts does not exist"),
    ({"NAS_PORT": "1"}, 3, "cannot reach nas@127.0.0.1:1: connection refused"),
    ({"NAS_SUDO_PASSWORD": "not-the-password"}, 4, "sudo on nas@127.0.0.1:2222 rejected NAS_SUDO_PASSWORD"),
])
def test_each_failure_is_one_line_with_its_own_exit_code(rig, env, code, message):
    result = inv("status", env=env)
    assert result.returncode == code
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "not-the-password" not in result.stdout + result.stderr


def test_a_host_that_never_answers_times_out_within_the_connect_timeout(rig):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        started = time.monotonic()
        result = inv("status", env={"NAS_PORT": str(silent.getsockname()[1]), "NAS_CONNECT_TIMEOUT": "1"})
        assert result.returncode == 3
        assert time.monotonic() - started < 8
        assert "no SSH answer within 1s" in result.stderr and "Traceback" not in result.stderr
    finally:
        silent.close()


def test_wrong_ssh_key_is_an_auth_failure(rig, tmp_path):
    key = tmp_path / "stranger"
    sh(f"ssh-keygen -q -t ed25519 -N '' -f {key}")
    result = inv("status", env={"NAS_SSH_KEY": str(key)})
    assert result.returncode == 4
    assert "SSH login as nas" in result.stderr


def test_no_key_to_log_in_with_is_an_auth_failure_not_unreachable(rig, tmp_path):
    """No NAS_SSH_KEY, no agent, nothing in ~/.ssh: sshd asks for a key nobody has (exit 4)."""
    result = inv("status", env={"NAS_SSH_KEY": "", "SSH_AUTH_SOCK": "", "HOME": str(tmp_path)})
    assert result.returncode == 4, result.stderr
    assert result.stderr.count("\n") == 1 and "no key to log in with" in result.stderr, result.stderr


def test_a_key_with_a_passphrase_and_an_agent_without_it_says_use_the_agent(rig, tmp_path):
    key = tmp_path / "locked"
    sh(f"ssh-keygen -q -t ed25519 -N 'a passphrase' -f {key}")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(tmp_path / "agent.sock")], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if (tmp_path / "agent.sock").exists():
                break
            time.sleep(0.05)
        result = inv("status", env={"NAS_SSH_KEY": str(key), "SSH_AUTH_SOCK": str(tmp_path / "agent.sock"),
                                    "HOME": str(tmp_path)})
    finally:
        agent.terminate()
        agent.wait()
    assert result.returncode == 4, result.stderr
    assert f"NAS_SSH_KEY {key} needs a passphrase, which loopctl does not ask for: use ssh-agent" in result.stderr


def test_missing_setting_is_one_line_before_any_connection(rig):
    before = SSHD_LOG.read_text().count("Connection from")
    result = inv("status", env={"NAS_HOST": ""})
    assert result.returncode == 2
    assert result.stderr.strip() == "inv status: error: NAS_HOST is not set (put it in .env or the environment; see .env.example)"
    bad_port = inv("status", env={"NAS_PORT": "22x"})
    assert bad_port.returncode == 2 and "NAS_PORT='22x' is invalid" in bad_port.stderr
    assert SSHD_LOG.read_text().count("Connection from") == before


class ProcessWatcher(threading.Thread):
    """Reads every process's command line and environment on this machine (the NAS) in a loop."""

    def __init__(self, secret: str):
        super().__init__(daemon=True)
        self.secret = secret.encode()
        self.seen_sudo = False
        self.leaks: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for name in ("cmdline", "environ"):
                    try:
                        data = Path(f"/proc/{pid}/{name}").read_bytes()
                    except OSError:
                        continue
                    if name == "cmdline" and data.startswith(b"sudo\0--stdin"):
                        self.seen_sudo = True
                    if self.secret in data:
                        self.leaks.append(f"{pid}/{name}: {data[:80]!r}")


def test_sudo_password_never_in_a_command_line_environment_output_or_record(deployed):
    password = sudo_password()
    watcher = ProcessWatcher(password)
    watcher.start()
    try:
        result = inv("--echo", "restart")
    finally:
        watcher.stop.set()
        watcher.join()
    assert result.returncode == 0, result.stderr
    assert watcher.seen_sudo, "the watcher never saw a sudo process: it proved nothing"
    assert watcher.leaks == []
    assert password not in result.stdout + result.stderr
    assert "sudo --stdin" in result.stdout  # the echo shows the command, not the password
    records = (RIG_STATE / "audit.jsonl").read_text() + sh(f"cat {LOOPCTL_HOME}/state/audit.jsonl").stdout
    assert password not in records
    assert password not in sh(f"cat {LOOPCTL_HOME}/state/runs/* 2>/dev/null || true").stdout
    assert password not in SSHD_LOG.read_text()


def test_one_ssh_connection_per_verb(deployed):
    before = SSHD_LOG.read_text().count("Accepted publickey for nas ")
    result = inv("--echo", "restart")
    assert result.returncode == 0, result.stderr
    commands_run = result.stdout.count("[nas@127.0.0.1:2222]")
    assert commands_run >= 4  # live color, restart, health polls, audit record
    assert SSHD_LOG.read_text().count("Accepted publickey for nas ") - before == 1


def test_docker_is_only_at_the_synology_path_and_the_tool_uses_it(deployed):
    probe = sh(f"ssh -i {RIG_STATE}/id_ed25519 -o UserKnownHostsFile={RIG_STATE}/known_hosts -p 2222 "
               "nas@127.0.0.1 'docker ps'", check=False)
    assert probe.returncode == 127
    result = inv("--dry", "stop")
    assert result.returncode == 0, result.stderr
    assert re.search(r"sudo --stdin '--prompt=\[loopctl <random>\] sudo password:' -- "
                     r"/var/packages/ContainerManager/target/usr/bin/docker stop loop-api-(blue|green)",
                     result.stdout), result.stdout


def test_least_privilege_passwordless_user_runs_the_everyday_verbs(deployed):
    status = inv("status", "--json", env_file=NASBOT_ENV)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["live_color"] in ("blue", "green")
    restart = inv("restart", env_file=NASBOT_ENV)
    assert restart.returncode == 0, restart.stderr
    assert "healthy" in restart.stdout
    setup = inv("setup", env_file=NASBOT_ENV)
    assert setup.returncode == 4
    assert "needs full sudo" in setup.stderr


def test_works_without_a_terminal_or_stdin(deployed):
    """No controlling terminal (a new session) and stdin closed, as under cron: sudo by password still works."""
    result = subprocess.run([sys.executable, "-m", "invoke", "restart"], cwd=REPO, env=inv_env(NAS_ENV, None),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                            start_new_session=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("verb", ["restart", "stop"])
def test_dry_run_changes_nothing_and_records_nothing(deployed, verb):
    def started_at() -> str:
        return sh("docker inspect -f '{{.State.StartedAt}} {{.State.Running}}' loop-api-blue loop-api-green",
                  check=False).stdout

    audit_before = sh(f"cat {LOOPCTL_HOME}/state/audit.jsonl").stdout
    before = started_at()
    result = inv("--dry", verb)
    assert result.returncode == 0, result.stderr
    shown = {"restart": f"{LOOPCTL_HOME}/scripts/detach.sh restart --performer ", "stop": "docker stop loop-api-"}
    assert shown[verb] in result.stdout, result.stdout
    assert started_at() == before
    assert sh(f"cat {LOOPCTL_HOME}/state/audit.jsonl").stdout == audit_before


def test_a_failing_remote_command_is_one_line_with_the_tail_of_its_stderr(deployed):
    result = inv("stop", env={"NAS_DOCKER": "/volume1/no/docker"})
    assert result.returncode == 6
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "`/volume1/no/docker stop loop-api-" in result.stderr and "command not found" in result.stderr
