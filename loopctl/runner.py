"""The one place commands run: on the NAS (`ssh.Nas`, over one SSH connection) or on the
workstation (`Local`).

Commands arrive as argv lists (see `commands.py`). Here, and only here, they are quoted,
printed under `--echo`/`--dry`, skipped under `--dry` when they change something, kept free
of secrets in everything printed or returned, and their failures turned into one-line errors
with distinct exit codes. How sudo gets its password is `sudo.py`'s; how the connection is
opened is `ssh.py`'s, which alone loads paramiko and Fabric.

What comes back from the NAS (container logs included) is someone else's text: it reaches
the terminal without control characters or escape sequences, and without secrets.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, TextIO

from .errors import RemoteFailed
from .settings import Settings
from .text import scrub

PROBE_TIMEOUT = 60


@dataclass(frozen=True)
class Output:
    stdout: str
    stderr: str
    exited: int

    def tail(self, lines: int = 3) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-lines:]) or "no output"


class Scrubbed:
    """A text stream that, line by line, drops sudo's prompt, control characters and escape
    sequences and blanks out secrets before anything reaches the terminal."""

    def __init__(self, stream: TextIO, secrets: Iterable[str], prompt: str = ""):
        self.stream = stream
        self.secrets = [secret for secret in secrets if secret]
        self.prompt = prompt
        self.pending = ""

    def scrub(self, text: str) -> str:
        return scrub(text.replace(self.prompt, "") if self.prompt else text, self.secrets)

    def write(self, data: str) -> None:
        self.pending += data
        *lines, self.pending = self.pending.split("\n")
        if lines:
            self.stream.write(self.scrub("\n".join(lines) + "\n"))
            self.stream.flush()

    def flush(self) -> None:
        if self.pending:
            self.stream.write(self.scrub(self.pending))
            self.pending = ""
        self.stream.flush()


class Runner:
    """What both places share: `probe` runs even under --dry (it only reads), `change`
    is printed instead of run under --dry. Subclasses only execute."""

    where = ""

    def __init__(self, settings: Settings, dry: bool = False, echo: bool = False,
                 out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.settings = settings
        self.dry = dry
        self.echo = echo
        self.secrets = settings.secrets()
        self.out = Scrubbed(out, self.secrets)
        self.err = Scrubbed(err, self.secrets)

    def probe(self, argv: Sequence[str], *, sudo: bool = False, ok: Sequence[int] = (0,)) -> Output:
        """Run a read-only command; it runs under --dry too, so the printed plan is the true one."""
        return self._run(argv, sudo=sudo, ok=ok, stream=False, pty=False, timeout=PROBE_TIMEOUT)

    def follow(self, argv: Sequence[str], *, sudo: bool = False) -> Output:
        """Stream a read-only command until it ends or Ctrl-C; any exit status is returned."""
        return self._run(argv, sudo=sudo, ok=None, stream=True, pty=True, timeout=None)

    def change(self, argv: Sequence[str], *, sudo: bool = True, ok: Sequence[int] = (0,),
               stream: bool = False, sink: TextIO | None = None) -> Output | None:
        """Run a command that changes state; None under --dry, where it is only printed. A
        streamed stdout goes, scrubbed, to `sink` if given (runlog.View: what of it is shown)."""
        if self.dry:
            self.show(argv, sudo)
            return None
        if stream:
            return interruptible(lambda: self._run(argv, sudo=sudo, ok=ok, stream=True, pty=False, timeout=None,
                                                   sink=sink))
        return self._run(argv, sudo=sudo, ok=ok, stream=False, pty=False, timeout=None)

    def command_line(self, argv: Sequence[str], sudo: bool) -> str:
        return shlex.join(argv)

    def show(self, argv: Sequence[str], sudo: bool) -> None:
        self.out.flush()
        self.out.stream.write(self.out.scrub(f"[{self.where}] {self.command_line(argv, sudo)}\n"))
        self.out.stream.flush()

    def _run(self, argv, *, sudo, ok, stream, pty, timeout, sink=None) -> Output:
        if self.echo:
            self.show(argv, sudo)
        result = self._execute(argv, sudo=sudo, stream=stream, pty=pty, timeout=timeout, sink=sink)
        result = Output(self.out.scrub(result.stdout), self.out.scrub(result.stderr), result.exited)
        if ok is not None and result.exited not in ok:
            raise self._failure(argv, result)
        return result

    def _failure(self, argv: Sequence[str], result: Output) -> Exception:
        return RemoteFailed(f"{self.where}: `{shlex.join(argv)}` exited {result.exited}: {result.tail()}")

    def _execute(self, argv, *, sudo, stream, pty, timeout, sink=None) -> Output:
        raise NotImplementedError


class Local(Runner):
    """Commands on the workstation (git), without a shell."""

    where = "local"

    def _execute(self, argv, *, sudo, stream, pty, timeout, sink=None) -> Output:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise RemoteFailed(f"local: {argv[0]} is not installed") from None
        return Output(done.stdout, done.stderr, done.returncode)


def interruptible(run: Callable[[], Output]) -> Output:
    """Run a streaming command in a thread, so Ctrl-C returns at once. (Invoke would wait for
    its output readers, which end only when the remote command does; the NAS scripts that
    stream run detached and carry on without us anyway.)"""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = run()
        except BaseException as exc:  # handed to the main thread below
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
