"""The SSH connection's own decisions, without a connection: why a port is not SSH (`not_ssh`,
from the first bytes it sent and how long it took), and the refusal of a host key that is not
pinned (`PinnedHostKeys`, given real paramiko keys read from known_hosts lines), and the TCP
connection it dials (Nagle's algorithm off, or each SSH message waits for a delayed ACK).

That a real port's answer reaches `not_ssh` is tested through `inv` in
tests/cli/test_strict_inputs.py.
"""

from __future__ import annotations

import socket

import paramiko
import pytest
from paramiko.hostkeys import HostKeyEntry

from loopctl import settings as settings_module
from loopctl.errors import HostKeyError
from loopctl.ssh import Nas, PinnedHostKeys, not_ssh

ADDRESS = "nas.example:2222"
TIMEOUT = 5.0
ASK = "(is NAS_PORT the SSH port?)"

NOT_SSH = {
    "an HTTP status line": (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n", 0.02,
        f"{ADDRESS} speaks HTTP, not SSH {ASK}"),
    "an HTTP/0.9 answer, the error page alone (Python's http.server)": (
        b'<!DOCTYPE HTML>\n<html lang="en">\n<head>', 0.02,
        f"{ADDRESS} speaks HTTP, not SSH {ASK}"),
    "an HTML page after blank lines": (
        b"\r\n  <HTML><body>Bad Request</body></HTML>", 0.02,
        f"{ADDRESS} speaks HTTP, not SSH {ASK}"),
    "another protocol's banner, its escape sequence dropped": (
        b"220 mail.example ESMTP \x1b[31mready\r\n", 0.02,
        f"{ADDRESS} answers '220 mail.example ESMTP ready', not SSH {ASK}"),
    "another banner: its first line only, bell and bad UTF-8 dropped": (
        b"* OK \x07IMAP4rev1 \xff\xfeready\r\n* CAPABILITY IMAP4rev1\r\n", 0.02,
        f"{ADDRESS} answers '* OK IMAP4rev1 \ufffd\ufffdready', not SSH {ASK}"),
    "a long banner cut at 60 characters": (
        b"+OK " + b"x" * 100 + b"\r\n", 0.02,
        f"{ADDRESS} answers '+OK {'x' * 56}', not SSH {ASK}"),
    "an immediate close": (
        b"", 0.02, f"{ADDRESS} closed the connection without an SSH banner (is SSH on that port?)"),
    "an immediate close after an empty line": (
        b"\r\n", 0.3, f"{ADDRESS} closed the connection without an SSH banner (is SSH on that port?)"),
    "silence until the timeout": (
        b"", 4.9, "no SSH answer within 5s (is SSH on that port?)"),
}


@pytest.mark.parametrize("first, waited, said", NOT_SSH.values(), ids=NOT_SSH.keys())
def test_a_port_that_is_not_ssh_is_named_by_what_it_sent(first, waited, said):
    assert not_ssh(ADDRESS, first, waited, TIMEOUT) == said


# Public host keys as known_hosts lines, with the fingerprints `ssh-keygen -lf` prints for them.
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF3X++U0DIPN7MB5qHUWn7dQy/6DiXLhjpbyR8kzMXxQ"
ECDSA = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDQUaB48orvv0pfVHp/bdct8tiWm"
         "aXuSHEbgY7wW6WYfu/WcYzAAN9rIcgflY9f5qIZYRFVDg7XFTJrHRE5w66A=")
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC4O3EyHmtYjm2RUt++lMHnH5it6sHmB8pEqo8IPXWRH4fZ5euGvtcXGn/PWYDPHTfTT"
       "W3k9N/yr1m1GVZD2Onv8lUD6w9i0uy8ZE7OoLRLK2jdwqrPHMxacapQ0hOtH20xdykP6IT1blz5LqaJgzs5uF04DsyTZs7GLqrnyLtwmHhg"
       "QtPHLf9V9F4pfogESdqO72UYyB7PEg4X00FaAB7+guP6q+/8R6YDbfcQXT2Urcr8vZxoUk9qKMiBMGy+J6u5nD9FVxH/NpEP4qzBezZ772J"
       "wQI6gXCKft3IXUJ2YnDhZknt9b1x/gdAY92sCvgr8RmQv2hZHC5fh4mwVyo7B")

UNKNOWN_KEYS = {
    # paramiko asks the policy when the host has no pinned key, or none of the type offered
    "a host with no pinned key (ed25519)": (
        "other.example " + ED25519, "[nas.example]:2222", ED25519,
        "ssh-ed25519 SHA256:KJTJhx0ku7z7w16lxTZ+mNNWE6KJwo8XaXwGa3kWxRE", "ssh_host_ed25519_key.pub"),
    "a key of another type than the pinned one (ecdsa)": (
        "nas.example " + ED25519, "nas.example", ECDSA,
        "ecdsa-sha2-nistp256 SHA256:c4QfI8bGC53POVAM7OsnRWmTAO20j6c5e1IyPvowOPc", "ssh_host_ecdsa_key.pub"),
    "an rsa key, the file pinning nothing": (
        "", "nas.example", RSA,
        "ssh-rsa SHA256:rcY4ARjPntjloIcY5qp+gi5xIjSWGn+xJ+aljQRCD4U", "ssh_host_rsa_key.pub"),
}


@pytest.mark.parametrize("pinned, host, offered, fingerprint, on_the_nas", UNKNOWN_KEYS.values(),
                         ids=UNKNOWN_KEYS.keys())
def test_a_host_key_that_is_not_pinned_is_refused_with_its_fingerprint(tmp_path, pinned, host, offered,
                                                                       fingerprint, on_the_nas):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(pinned + "\n" if pinned else "")
    client = paramiko.SSHClient()
    client.load_system_host_keys(str(known_hosts))  # as ssh.Nas loads NAS_KNOWN_HOSTS
    key = HostKeyEntry.from_line(f"{host} {offered}").key
    with pytest.raises(HostKeyError) as refused:
        PinnedHostKeys(str(known_hosts)).missing_host_key(client, host, key)
    assert str(refused.value) == (
        f"host key of {host} is not in {known_hosts} ({fingerprint}); compare it with "
        f"`ssh-keygen -lf /etc/ssh/{on_the_nas}` run on the NAS itself, "
        f"then pin it: ssh-keyscan -p PORT HOST >> {known_hosts}")
    assert known_hosts.read_text() == (pinned + "\n" if pinned else "")  # nothing pinned on the way
    assert client.get_host_keys().lookup(host) is None


def test_the_connection_to_the_nas_sends_each_message_at_once():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        nas = Nas(settings_module.load({"LOOP_ENV_FILE": "/dev/null", "NAS_HOST": "127.0.0.1", "NAS_PORT": str(port)}))
        with nas._dial("127.0.0.1", port) as sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
