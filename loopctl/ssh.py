"""The SSH connection to the NAS: how it is opened, pinned and explained when it fails.

Why its own module: only here do paramiko and Fabric come in (imported when a connection
opens, so `inv --list` and the HTTP-only checks load neither). `Nas` is the runner over that
one connection per verb: it puts sudo in front of a command and runs it there. What every
runner does with a command (--dry, --echo, scrubbing, exit codes) is `runner.py`'s; when the
sudo password is typed is `sudo.py`'s.

A failed connection is one line naming the cause the user can act on: a setting (the key
file), the host key (unknown, or changed), the login, or what answers on the port instead
of SSH. Host keys come only from NAS_KNOWN_HOSTS, for the NAS and for every jump host.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Sequence, TextIO

from .errors import AuthFailed, ConfigError, HostKeyError, RemoteFailed, Unreachable
from .runner import Output, Runner, Scrubbed
from .settings import Settings
from .sudo import SHOWN_PROMPT, SudoPrompt, new_prompt
from .text import printable

# Paramiko logs connection failures with tracebacks from its own thread; the error the user
# sees is ours (one line), so its log records go nowhere unless a caller configures logging.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def key_needs_passphrase(path: Path) -> bool:
    """NAS_SSH_KEY, read before anything connects: a file that is missing, unreadable or not a
    private key is a setting's fault (exit 2), not the NAS's. True when it is encrypted: loopctl
    asks for no passphrase, so only an ssh-agent holding that key can log in with it."""
    import paramiko

    shown = str(path)
    if not path.exists():
        raise ConfigError(f"NAS_SSH_KEY file {shown} does not exist")
    if not path.is_file():
        raise ConfigError(f"NAS_SSH_KEY {shown} is not a file")
    try:
        head = path.read_bytes()[:64]
    except OSError as exc:
        raise ConfigError(f"NAS_SSH_KEY file {shown} cannot be read: {exc.strerror or exc}") from None
    if re.match(rb"(ssh-|ecdsa-|sk-)[a-z0-9@.-]+ AAAA", head):
        raise ConfigError(f"NAS_SSH_KEY file {shown} is a public key: give the private key file (without .pub)")
    reasons = []
    for kind in (paramiko.Ed25519Key, paramiko.RSAKey, paramiko.ECDSAKey):  # what paramiko itself tries
        try:
            kind.from_private_key_file(shown)
            return False
        except paramiko.PasswordRequiredException:
            return True
        except (paramiko.SSHException, ValueError, OSError) as exc:
            reasons.append(str(exc))
    raise ConfigError(f"NAS_SSH_KEY file {shown} is not a private key paramiko can read "
                      f"(an OpenSSH, RSA or ECDSA private key): {reasons[0]}")


class Recorded:
    """The TCP socket paramiko talks over, keeping the first bytes the server sent: when no
    SSH banner comes, they tell what answers on that port instead (an HTTP server answers
    paramiko's own banner with an error page at once)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.first = b""

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        if len(self.first) < 200:
            self.first += data[: 200 - len(self.first)]
        return data

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def not_ssh(address: str, first: bytes, waited: float, timeout: float) -> str:
    """Why a port gave no SSH banner, from what it sent."""
    # An HTTP server answers paramiko's banner line with an error (Python's as HTTP/0.9: the page alone)
    if first.startswith(b"HTTP/") or re.match(rb"\s*<(!doctype )?html", first, re.IGNORECASE):
        return f"{address} speaks HTTP, not SSH (is NAS_PORT the SSH port?)"
    if first.strip():
        said = printable(first.decode("utf-8", "replace").strip().splitlines()[0])[:60]
        return f"{address} answers {said!r}, not SSH (is NAS_PORT the SSH port?)"
    if waited < timeout * 0.9:
        return f"{address} closed the connection without an SSH banner (is SSH on that port?)"
    return f"no SSH answer within {timeout:g}s (is SSH on that port?)"


class PinnedHostKeys:
    """Paramiko policy for a host missing from NAS_KNOWN_HOSTS: refuse, showing the
    fingerprint and how to check and pin it. (Fabric's default adds any key silently.)"""

    def __init__(self, known_hosts: str):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key) -> None:
        import base64
        import hashlib

        fingerprint = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
        name = key.get_name()  # ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256: sshd's files say ed25519, rsa, ecdsa
        kind = "ecdsa" if name.startswith("ecdsa-") else name.split("-")[-1]
        raise HostKeyError(
            f"host key of {hostname} is not in {self.known_hosts} ({name} SHA256:{fingerprint}); "
            f"compare it with `ssh-keygen -lf /etc/ssh/ssh_host_{kind}_key.pub` "
            f"run on the NAS itself, then pin it: ssh-keyscan -p PORT HOST >> {self.known_hosts}")


class Nas(Runner):
    """One SSH connection to the NAS for the whole verb, opened on first use."""

    def __init__(self, settings: Settings, dry: bool = False, echo: bool = False,
                 out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        super().__init__(settings, dry, echo, out, err)
        self.where = f"{settings.nas_user}@{settings.nas_host}:{settings.nas_port}"
        self._connection = None

    def command_line(self, argv: Sequence[str], sudo: bool, prompt: str = SHOWN_PROMPT) -> str:
        """The line that runs; printed (--dry, --echo) with a placeholder for the prompt,
        which is new for every command."""
        if not sudo:
            return shlex.join(argv)
        if self.settings.nas_sudo_password:
            return shlex.join(["sudo", "--stdin", f"--prompt={prompt}", "--", *argv])
        return shlex.join(["sudo", "--non-interactive", "--", *argv])

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    @property
    def connection(self):
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self):
        import paramiko
        from fabric import Config, Connection

        settings = self.settings
        key, agent = settings.nas_ssh_key, bool(os.environ.get("SSH_AUTH_SOCK"))
        encrypted = bool(key) and key_needs_passphrase(key)
        use_agent = f"{key} needs a passphrase, which loopctl does not ask for: use ssh-agent (ssh-add {key})"
        if encrypted and not agent:
            raise AuthFailed(f"NAS_SSH_KEY {use_agent}")
        known_hosts = str(settings.nas_known_hosts)
        if not settings.nas_known_hosts.is_file():
            raise HostKeyError(f"NAS_KNOWN_HOSTS file {known_hosts} does not exist; pin the NAS host key first "
                               f"(see docs/install.md, 'Pin the host key')")
        # The SSH banner and the authentication get the same bound as the TCP connect.
        # An encrypted key is left to the agent (paramiko would only fail to read it).
        connect_kwargs = {"banner_timeout": settings.nas_connect_timeout, "auth_timeout": settings.nas_connect_timeout,
                          **({"key_filename": [str(key)]} if key and not encrypted else {})}
        # ~/.ssh/config is read (aliases, keys, ProxyJump), but the agent is never forwarded: the
        # NAS runs what others deploy, and a forwarded agent lets root there log in as you.
        conn = Connection(settings.nas_host, user=settings.nas_user, port=settings.nas_port,
                          connect_timeout=settings.nas_connect_timeout, connect_kwargs=connect_kwargs,
                          forward_agent=False, config=Config(overrides={"load_ssh_configs": True}))
        hop = conn
        while isinstance(hop, Connection):  # the NAS, then each ProxyJump host: all pinned
            hop.client.load_system_host_keys(known_hosts)
            hop.client.set_missing_host_key_policy(PinnedHostKeys(known_hosts))
            hop.forward_agent = False
            hop.connect_timeout = hop.connect_timeout or settings.nas_connect_timeout
            hop = hop.gateway
        # Direct (no ProxyJump or ProxyCommand): the TCP connection is opened here, so a name that
        # does not resolve, a refusal or silence is named, and so is a port that answers but not
        # with SSH.
        sock = None if conn.gateway else Recorded(self._dial(conn.host, conn.port))
        if sock:
            conn.connect_kwargs["sock"] = sock
        started = time.monotonic()
        try:
            conn.open()
        except HostKeyError:
            raise
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(f"host key of {exc.hostname} CHANGED (offered {exc.key.get_name()}, pinned in "
                               f"{known_hosts} differs): possible interception; refusing. If the NAS was "
                               f"reinstalled, verify the new key on its console and replace the pinned line") from None
        except paramiko.AuthenticationException:
            hint = f"NAS_SSH_KEY {use_agent}" if encrypted else "check NAS_USER, NAS_SSH_KEY or your ssh-agent"
            raise AuthFailed(f"SSH login as {settings.nas_user} on {settings.nas_host}:{settings.nas_port} was refused "
                             f"({hint})") from None
        except (socket.timeout, TimeoutError):
            raise Unreachable(f"cannot reach {self.where}: no answer within "
                              f"{settings.nas_connect_timeout:g}s") from None
        except paramiko.SSHException as exc:
            if "No authentication methods available" in str(exc) and encrypted:
                raise AuthFailed(f"SSH login as {settings.nas_user} on {settings.nas_host}:{settings.nas_port}: "
                                 f"NAS_SSH_KEY {use_agent}") from None
            if "No authentication methods available" in str(exc):
                raise AuthFailed(f"SSH login as {settings.nas_user} on {settings.nas_host}:{settings.nas_port}: no key "
                                 f"to log in with (NAS_SSH_KEY is empty, no ssh-agent, no key in ~/.ssh or "
                                 f"~/.ssh/config): set NAS_SSH_KEY or use ssh-agent") from None
            if sock and (sock.first or "banner" in str(exc).lower()) and not sock.first.startswith(b"SSH-"):
                raise Unreachable(f"cannot reach {self.where}: " + not_ssh(
                    f"{conn.host}:{conn.port}", sock.first, time.monotonic() - started,
                    settings.nas_connect_timeout)) from None
            # A port that accepts but never speaks SSH ends in a banner timeout, or this.
            if "banner" in str(exc) or "No existing session" in str(exc):
                raise Unreachable(f"cannot reach {self.where}: no SSH answer within "
                                  f"{settings.nas_connect_timeout:g}s (is SSH on that port?)") from None
            raise Unreachable(f"cannot reach {self.where}: SSH handshake failed: {exc}") from None
        except OSError as exc:
            raise Unreachable(f"cannot reach {self.where}: {describe(exc)}") from None
        conn.transport.set_keepalive(15)
        return conn

    def _dial(self, host: str, port: int) -> socket.socket:
        """The TCP connection to the NAS, with Nagle's algorithm off (TCP_NODELAY, as OpenSSH
        sets it): paramiko leaves it on, and then each small SSH message that follows one not yet
        acknowledged waits out the NAS's delayed ACK (40 ms on Linux). That cost every verb
        about 40 ms on the login and again on each command it ran (measured in bench/)."""
        timeout = self.settings.nas_connect_timeout
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except socket.gaierror as exc:
            raise Unreachable(f"cannot reach {self.where}: the host name {host!r} does not resolve "
                              f"({exc.strerror})") from None
        except (socket.timeout, TimeoutError):
            raise Unreachable(f"cannot reach {self.where}: no answer within {timeout:g}s") from None
        except OSError as exc:
            raise Unreachable(f"cannot reach {self.where}: {describe(exc)}") from None

    def _execute(self, argv, *, sudo, stream, pty, timeout, sink=None) -> Output:
        from invoke.exceptions import CommandTimedOut, Failure

        prompt = new_prompt()
        password = self.settings.nas_sudo_password
        watchers = [SudoPrompt(prompt, password)] if sudo and password else []
        out = Scrubbed(sink or self.out.stream, self.secrets, prompt)
        err = Scrubbed(self.err.stream, self.secrets, prompt)
        try:
            # An explicit out_stream would un-hide the output, so streams are given only to stream.
            streams = {"out_stream": out, "err_stream": err} if stream else {}
            # A pty makes the remote command end with the session (Ctrl-C, dropped link); sudo
            # turns echo off on it while it reads the password.
            result = self.connection.run(self.command_line(argv, sudo, prompt), warn=True, hide=not stream,
                                         pty=pty, in_stream=False, watchers=watchers, timeout=timeout, **streams)
        except CommandTimedOut:
            raise RemoteFailed(f"{self.where}: `{shlex.join(argv)}` timed out after {timeout}s") from None
        except Failure:
            self.close()
            raise AuthFailed(f"sudo on {self.where} rejected NAS_SUDO_PASSWORD") from None
        finally:
            out.flush()
            err.flush()
        return Output(result.stdout.replace(prompt, ""), result.stderr.replace(prompt, ""), result.exited)

    def _failure(self, argv, result: Output) -> Exception:
        return self.sudo_refusal(argv, result) or super()._failure(argv, result)

    def sudo_refusal(self, argv: Sequence[str], result: Output) -> AuthFailed | None:
        """sudo itself said no (a password it wants, a command it may not run), whatever the exit
        codes the command is allowed: that is an authentication error, not the command's."""
        if "a password is required" in result.stderr:
            return AuthFailed(f"sudo on {self.where} wants a password: set NAS_SUDO_PASSWORD, or add the "
                              f"passwordless sudoers lines in docs/security.md#passwordless-sudo")
        if re.search(r"is not allowed to execute|not in the sudoers file", result.stderr):
            return AuthFailed(f"sudo on {self.where} refused `{shlex.join(argv)}`: {result.tail(1)}")
        return None

    def put_bytes(self, content: bytes, remote_path: str) -> None:
        """Upload content as the SSH user, readable by that user only (into a private temp folder;
        a sudo'd step copies it into place). Nothing is written on the workstation's disk."""
        if self.dry:
            self.show(["sftp-put", f"<{len(content)} bytes>", remote_path], sudo=False)
            return
        # Fabric keeps one SFTP session per connection: it is not closed here.
        with self.connection.sftp().open(remote_path, "wb") as handle:
            handle.chmod(0o600)
            handle.write(content)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def describe(exc: BaseException) -> str:
    """A short human reason for a connection error."""
    if isinstance(exc, socket.gaierror):
        return "unknown host name"
    if isinstance(exc, ConnectionRefusedError) or "Unable to connect" in str(exc):
        return "connection refused (is SSH enabled on that port?)"
    return str(exc) or type(exc).__name__
