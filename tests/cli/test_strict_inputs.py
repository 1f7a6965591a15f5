"""Strict settings and the real cause of an SSH failure, through real `inv` processes: each
mistake is one line and its exit code (2 bad settings or input, 3 unreachable, 4 login),
and the ones that are the settings' fault stop before anything connects. The servers are
real ones on 127.0.0.1: a listener that counts connections, an HTTP server, a server that
closes at once. (What `not_ssh` makes of other first bytes is tests/unit/test_ssh.py's.)"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from loopctl import settings

REPO = Path(__file__).resolve().parents[2]
INV = Path(sys.executable).with_name("inv")


class Listener:
    """A port that accepts and says nothing; `connections` counts who came."""

    def __init__(self, banner: bytes = b""):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.banner = banner
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                peer, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.banner:
                peer.sendall(self.banner)
                peer.close()

    def close(self) -> None:
        self.sock.close()


@contextmanager
def listening(banner: bytes = b"") -> Iterator[Listener]:
    listener = Listener(banner)
    try:
        yield listener
    finally:
        listener.close()


@contextmanager
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def inv(tmp_path):
    """`inv ARGS` with a settings file of NAS settings plus `lines`, and nothing from this
    environment's settings (nor its ssh-agent)."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")

    def run(*args: str, lines: str = "", port: int = 1, **environ: str) -> subprocess.CompletedProcess:
        env_file = tmp_path / "test.env"
        env_file.write_text(f"NAS_HOST=127.0.0.1\nNAS_PORT={port}\nNAS_USER=ops\nNAS_KNOWN_HOSTS={known_hosts}\n"
                            f"AUDIT_LOG={tmp_path / 'audit.jsonl'}\nNAS_CONNECT_TIMEOUT=5\n{lines}")
        env_file.chmod(0o600)
        names = {setting.name for setting in settings.SETTINGS} | {"SSH_AUTH_SOCK"}
        env = {k: v for k, v in os.environ.items() if k not in names}
        return subprocess.run([str(INV), *args], cwd=REPO, capture_output=True, text=True, timeout=60,
                              env={**env, "HOME": str(tmp_path), "LOOP_ENV_FILE": str(env_file), **environ})

    return run


def one_line(result: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# --- settings: one line, exit 2, nothing connects ---

@pytest.mark.parametrize("lines, text", [
    ("NAS_PROT=41000\n", "test.env:7: NAS_PROT is not a loopctl setting; did you mean NAS_PORT?"),
    ("NAS_USER=root\n", "test.env: NAS_USER is set twice, on lines 3 and 7; keep one"),
    ("NAS_SUDO_PASSWORD='hunter2\n", "test.env:7: cannot read this line"),
    ('HEALTH_EXPECT="status=ok\\nX: 1"\n', "HEALTH_EXPECT='status=ok\\nX: 1' is invalid: expected one line"),
    ("KEEP_RELEASES=999999999999\n", "KEEP_RELEASES='999999999999' is invalid: expected at most 100 (/"),
])
def test_a_settings_mistake_is_one_line_and_exit_2_before_connecting(inv, lines, text):
    with listening() as nas:
        result = inv("status", lines=lines, port=nas.port)
        one_line(result, 2, text)
        assert "hunter2" not in result.stderr
        assert nas.connections == 0


def test_a_connect_timeout_beyond_reason_is_refused_rather_than_waited_for(inv):
    with listening() as silent:
        result = inv("status", port=silent.port, NAS_CONNECT_TIMEOUT="999999999999")
        one_line(result, 2, "NAS_CONNECT_TIMEOUT='999999999999' is invalid: expected at most 300")
        assert silent.connections == 0


def test_a_settings_file_that_does_not_exist_is_exit_2(inv, tmp_path):
    result = inv("status", LOOP_ENV_FILE=str(tmp_path / "typo.env"))
    one_line(result, 2, f"LOOP_ENV_FILE='{tmp_path / 'typo.env'}' does not exist")


# --- the SSH key: the setting's fault (2) or the login's (4), told before connecting ---

def keygen(path: Path, passphrase: str = "") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)], check=True)
    return path


@pytest.mark.parametrize("make, code, text", [
    (lambda d: d / "missing", 2, "NAS_SSH_KEY file {key} does not exist"),
    (lambda d: d, 2, "NAS_SSH_KEY {key} is not a file"),
    (lambda d: (d / "junk").write_text("not a key\n") and d / "junk", 2,
     "NAS_SSH_KEY file {key} is not a private key paramiko can read"),
    (lambda d: Path(f"{keygen(d / 'id')}.pub"), 2, "NAS_SSH_KEY file {key} is a public key"),
    (lambda d: keygen(d / "locked", "a passphrase"), 4,
     "NAS_SSH_KEY {key} needs a passphrase, which loopctl does not ask for: use ssh-agent (ssh-add {key})"),
])
def test_a_key_file_that_cannot_log_in_is_named_before_connecting(inv, tmp_path, make, code, text):
    keys = tmp_path / "keys"
    keys.mkdir()
    key = make(keys)
    with listening() as nas:
        result = inv("status", port=nas.port, NAS_SSH_KEY=str(key))
        one_line(result, code, text.format(key=key))
        assert nas.connections == 0


# --- what answers on the port, or does not ---

def test_a_port_that_speaks_http_is_named_at_once(inv):
    with http_server() as port:
        started = time.monotonic()
        result = inv("status", port=port)
    one_line(result, 3, f"cannot reach ops@127.0.0.1:{port}: 127.0.0.1:{port} speaks HTTP, not SSH")
    assert time.monotonic() - started < 4  # not the 5 s banner timeout


def test_a_port_that_closes_at_once_is_not_called_silent(inv):
    with listening(b"\n") as nas:
        result = inv("status", port=nas.port)
    one_line(result, 3, f"127.0.0.1:{nas.port} closed the connection without an SSH banner")


def test_a_name_that_does_not_resolve_is_named(inv):
    result = inv("status", NAS_HOST="nas.invalid")
    one_line(result, 3, "cannot reach ops@nas.invalid:1: the host name 'nas.invalid' does not resolve")


# --- small inputs ---

def test_a_since_date_that_does_not_exist_is_refused(inv):
    with listening() as nas:
        result = inv("logs", "--since", "2026-13-45", port=nas.port)
        one_line(result, 2, "inv logs: error: --since takes a duration like 10m, 2h, 1d or a date like "
                            "2026-11-25, not '2026-13-45'")
        assert nas.connections == 0


def test_an_upper_case_commit_id_is_taken_as_the_commit_prefix(inv, tmp_path):
    result = inv("rollback", "--to", "ABCDEF12")  # accepted: it goes on to connect (port 1 refuses)
    one_line(result, 3, "cannot reach ops@127.0.0.1:1: connection refused")
    record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert record["args"]["to"] == "abcdef12"


def test_audit_local_needs_no_nas_settings(tmp_path):
    audit_log = tmp_path / "audit.jsonl"
    audit_log.write_text(json.dumps({"time": "2026-11-25T10:00:00Z", "verb": "restart", "status": 0,
                                     "seconds": 1.5, "performer": "ann", "host": "ops@nas:22", "args": {}}) + "\n")
    env_file = tmp_path / "local.env"
    env_file.write_text(f"AUDIT_LOG={audit_log}\n")
    env = {k: v for k, v in os.environ.items() if k not in {setting.name for setting in settings.SETTINGS}}
    result = subprocess.run([str(INV), "audit", "--local"], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**env, "LOOP_ENV_FILE": str(env_file)})
    assert result.returncode == 0, result.stderr
    assert "restart" in result.stdout and "ann" in result.stdout


def test_setup_says_installing_only_once_it_has_connected(inv):
    result = inv("setup")
    one_line(result, 3, "cannot reach ops@127.0.0.1:1: connection refused")
    assert result.stdout == ""


# --- Invoke's own flag errors are bad input too: exit 2, one line, nothing connects ---

@pytest.mark.parametrize("args, text", [
    (("status", "--bogus"), "inv status: error: No idea what '--bogus' is! (see: inv --help status)"),
    (("--echo", "rebuild", "--nope"), "inv rebuild: error: No idea what '--nope' is! (see: inv --help rebuild)"),
    (("logs", "--tail"), "inv logs: error: --tail needs a value (see: inv --help logs)"),
    (("restart", "--timeout", "3601"), "inv restart: error: --timeout takes at most 3600 (as DEPLOY_HEALTH_TIMEOUT "
                                       "does), not '3601'"),
])
def test_a_flag_invoke_refuses_or_beyond_its_maximum_is_exit_2(inv, args, text):
    with listening() as nas:
        result = inv(*args, port=nas.port)
        one_line(result, 2, text)
        assert result.stdout == "" and nas.connections == 0


@pytest.mark.parametrize("args", [("rebuild", "--json", "--nope"), ("--dry", "rollback", "--json")])
def test_bad_input_with_json_is_the_one_object_saying_so(inv, args):
    with listening() as nas:
        result = inv(*args, port=nas.port)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        report = json.loads(result.stdout)
        assert (report["status"], report["exit"]) == ("bad input", 2)
        assert report["error"] == result.stderr.strip()
        assert nas.connections == 0


@pytest.mark.parametrize("verb, text", [("logs", "lines to show from the end of the log"),
                                        ("health", "base URL to check instead of PUBLIC_URL")])
def test_help_still_explains_every_flag(inv, verb, text):
    result = inv("--help", verb)
    assert result.returncode == 0 and text in " ".join(result.stdout.split()), result.stdout
