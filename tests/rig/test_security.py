"""The sudo prompt, agent forwarding, jump hosts and what the NAS prints, on the real sshd and
sudo of the sandbox NAS. These need sshd and sudo only (no containers), and drive the runner
directly, as every verb does."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from loopctl import settings
from loopctl.errors import HostKeyError
from loopctl.ssh import Nas

from rig.sandbox import NAS_ENV, RIG_STATE, sudo_password

KEY = RIG_STATE / "id_ed25519"
KNOWN_HOSTS = RIG_STATE / "known_hosts"
CONTROL = [chr(c) for c in (*range(0, 9), *range(11, 32), *range(0x7f, 0xa0))]


@pytest.fixture(scope="module")
def sshd(request):
    """The sandbox's sshd: reused when it answers, else started like every rig test does."""
    try:
        socket.create_connection(("127.0.0.1", 2222), timeout=2).close()
    except OSError:
        request.getfixturevalue("rig")
    assert NAS_ENV.is_file()


def nas(out: io.StringIO | None = None, **overrides: str) -> Nas:
    """A runner as a verb gets it: settings from the sandbox's file, `nas`, sudo by password."""
    clean = {k: v for k, v in os.environ.items() if k not in {setting.name for setting in settings.SETTINGS}}
    loaded = settings.load({**clean, "LOOP_ENV_FILE": str(NAS_ENV), **overrides})
    out = out if out is not None else io.StringIO()
    return Nas(loaded, out=out, err=out)


# The command prints the old fixed prompt, a guess at the new format and the real prompt of this
# very command (read from its parent sudo's command line, as any process on the NAS could),
# each mid-output, then waits 3 s for a line on stdin and writes down whatever it got.
PROMPTING = r"""
echo "as $(id -un)"
printf '[loopctl] sudo password:'; echo
printf '[loopctl 0123456789abcdef] sudo password:'
real=$(tr '\0' '\n' < /proc/$PPID/cmdline | sed -n 's/^--prompt=//p')
printf '%s' "$real" >&2
printf '\nmid-output\n%s' "$real"
if read -r -t 3 line; then printf '%s' "$line" > "$1"; echo "read a line"; else echo "read nothing"; fi
"""


@pytest.mark.parametrize("how", ["probe", "follow"])
def test_the_sudo_password_is_typed_once_into_sudos_own_prompt_only(sshd, tmp_path, how):
    typed = tmp_path / "typed"
    out = io.StringIO()
    runner = nas(out)
    try:
        result = getattr(runner, how)(["bash", "-c", PROMPTING, "prompting", str(typed)], sudo=True)
    finally:
        runner.close()
    shown = result.stdout + result.stderr + out.getvalue()
    assert result.exited == 0 and "as root" in result.stdout, result  # sudo took the password
    assert "read nothing" in result.stdout, shown
    assert not typed.exists(), f"the command read {typed.read_text()!r} from its stdin"
    assert "[loopctl] sudo password:" in result.stdout  # the command's own text, shown as it is
    assert "mid-output" in result.stdout and "] sudo password:" not in result.stdout.split("mid-output")[1]
    assert sudo_password() not in shown


def test_dry_run_shows_a_stable_readable_sudo_line(sshd):
    out = io.StringIO()
    runner = nas(out)
    runner.dry = True
    runner.change(["/var/packages/ContainerManager/target/usr/bin/docker", "restart", "loop-api-blue"])
    runner.change(["/var/packages/ContainerManager/target/usr/bin/docker", "restart", "loop-api-blue"])
    line = "[nas@127.0.0.1:2222] sudo --stdin '--prompt=[loopctl <random>] sudo password:' -- " \
           "/var/packages/ContainerManager/target/usr/bin/docker restart loop-api-blue\n"
    assert out.getvalue() == line * 2
    assert not runner.is_open


def test_a_wrong_password_is_still_an_auth_failure(sshd):
    from loopctl.errors import AuthFailed

    runner = nas(NAS_SUDO_PASSWORD="not-the-password")
    with pytest.raises(AuthFailed, match="rejected NAS_SUDO_PASSWORD"):
        runner.probe(["true"], sudo=True)


def test_a_password_that_begins_the_token_leaves_no_tail_of_it_visible(sshd):
    password = sudo_password()
    token = password + "-TOKEN-TAIL"
    out = io.StringIO()
    runner = nas(out, MCP_TOKEN=token)
    try:
        result = runner.probe(["echo", f"token {token}"], sudo=True)
        runner.follow(["echo", f"again {token}"], sudo=True)
    finally:
        runner.close()
    assert result.stdout == "token <redacted>\n"
    assert "TAIL" not in out.getvalue() and "again <redacted>" in out.getvalue()


def test_control_characters_from_the_nas_never_reach_the_terminal(sshd):
    """What containers log is anyone's text: `inv logs` prints it, so it arrives printable."""
    hostile = r"printf 'title\033]0;owned\007 \033[2J\033[31mred\033[0m\tcol\r\n\302\233" \
              r"1;1Hhome\a\033P+q\033\\end\n'; printf 'err\033[5m\n' >&2"
    out = io.StringIO()
    runner = nas(out)
    try:
        probed = runner.probe(["bash", "-c", hostile], sudo=True)
        runner.follow(["bash", "-c", hostile], sudo=True)
    finally:
        runner.close()
    assert probed.stdout == "title red\tcol\nhomeend\n" and probed.stderr == "err\n", probed
    assert "title red\tcol\n" in out.getvalue() and "homeend" in out.getvalue()
    for text in (probed.stdout, probed.stderr, out.getvalue()):
        assert not any(c in text for c in CONTROL), repr(text)


@pytest.fixture
def agent():
    """A real ssh-agent holding the sandbox key, as a developer's would."""
    started = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    found = dict(part.split("=", 1) for part in started.replace(";", "\n").split() if "=" in part)
    env = {**os.environ, "SSH_AUTH_SOCK": found["SSH_AUTH_SOCK"]}
    subprocess.run(["ssh-add", str(KEY)], env=env, capture_output=True, check=True)
    try:
        yield found["SSH_AUTH_SOCK"]
    finally:
        os.kill(int(found["SSH_AGENT_PID"]), signal.SIGTERM)


def ssh_home(tmp_path: Path, config: str) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(config)
    return home


def test_the_agent_is_never_forwarded_even_when_ssh_config_says_so(sshd, tmp_path, monkeypatch, agent):
    home = ssh_home(tmp_path, "Host *\n    ForwardAgent yes\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    runner = nas()
    try:
        remote = runner.probe(["env"])
    finally:
        runner.close()
    assert "SSH_AUTH_SOCK" not in remote.stdout, remote.stdout  # sshd sets it for a forwarded agent
    assert "SSH_CONNECTION" in remote.stdout  # it is the remote environment we read


def test_a_jump_host_whose_key_is_not_pinned_is_refused(sshd, tmp_path, monkeypatch):
    """ProxyJump from ~/.ssh/config: the jump host (the same sshd, named `localhost`, which
    NAS_KNOWN_HOSTS does not list) is checked like the NAS, not trusted on first sight."""
    home = ssh_home(tmp_path, f"Host 127.0.0.1\n    ProxyJump nas@localhost:2222\n"
                              f"Host localhost\n    IdentityFile {KEY}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    before = (RIG_STATE / "sshd.log").read_text().count("Accepted publickey for nas ")
    runner = nas()
    try:
        with pytest.raises(HostKeyError) as refused:
            runner.probe(["true"])
    finally:
        runner.close()
    message = str(refused.value)
    assert "host key of [localhost]:2222 is not in" in message and "\n" not in message, message
    assert refused.value.code == 5
    assert (RIG_STATE / "sshd.log").read_text().count("Accepted publickey for nas ") == before

    pinned = tmp_path / "known_hosts"
    key_line = KNOWN_HOSTS.read_text().strip()
    pinned.write_text(f"{key_line}\n{key_line.replace('[127.0.0.1]:2222', '[localhost]:2222', 1)}\n")
    runner = nas(NAS_KNOWN_HOSTS=str(pinned))
    try:
        assert runner.probe(["echo", "through the jump"]).stdout == "through the jump\n"
        assert runner.connection.gateway is not None  # it did go through the jump host
    finally:
        runner.close()
