"""Helpers only the end-to-end tests use (the sandbox's layout and the ways to drive it that the
benchmark shares are in rig/): what runs on the NAS, byte-for-byte digests, a held SSE stream,
reading a verb's output as it comes."""

from __future__ import annotations

import http.client
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from rig.sandbox import LOCKFILE, OAUTH_DIR, OAUTH_VOLUME, PROXY, WORKSTATION, commit_all, sh


def running_api_colors() -> list[str]:
    out = sh("docker ps --filter name=loop-api- --format '{{.Names}}'").stdout.split()
    return sorted(name.removeprefix("loop-api-") for name in out)


def lock_is_free() -> bool:
    return sh(f"flock --shared --nonblock {LOCKFILE} true", check=False).returncode == 0


def file_digests(folder: str) -> str:
    """sha256 of every file under a folder (the OAuth keys and database), to compare byte for byte."""
    return sh(f"cd {folder} && find . -type f | sort | xargs -r sha256sum").stdout


def oauth_digests() -> str:
    """file_digests of the OAuth state where the stack keeps it: the volume once loopctl moved it
    there, else the app's folder."""
    mountpoint = sh(f"docker volume inspect -f '{{{{.Mountpoint}}}}' {OAUTH_VOLUME}", check=False).stdout.strip()
    return file_digests(mountpoint if mountpoint else OAUTH_DIR)


@contextmanager
def edited_main(label: str, edit) -> Iterator[str]:
    """Commit an edit of the example app's api/main.py in the workstation clone (yields the short
    commit); afterwards a commit puts the file back as it was."""
    main = WORKSTATION / "api" / "main.py"
    before = main.read_text()
    main.write_text(edit(before))
    try:
        yield commit_all(f"test: {label}")
    finally:
        main.write_text(before)
        commit_all(f"test: {label} undone")


class SseClient(threading.Thread):
    """Holds GET /mcp (the legacy SSE stream) open and notes when it ends."""

    def __init__(self):
        super().__init__(daemon=True)
        self.endpoint: str | None = None
        self.ended_at: float | None = None
        self.connected = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection(*PROXY, timeout=120)
        try:
            conn.request("GET", "/mcp", headers={"Accept": "text/event-stream"})
            response = conn.getresponse()
            while True:
                line = response.fp.readline()
                if not line:
                    break
                if line.startswith(b"data: /mcp/messages/"):
                    self.endpoint = line[6:].decode().strip()
                    self.connected.set()
        except OSError:
            pass
        finally:
            self.ended_at = time.time()
            conn.close()


def stream_lines(process: subprocess.Popen) -> list[tuple[float, str]]:
    """Read a process's output to the end, stamping each line with the time it arrived."""
    lines = []
    for line in process.stdout:
        lines.append((time.time(), line.rstrip("\n")))
    process.wait()
    return lines


def read_until(process: subprocess.Popen, text: str, timeout: float) -> list[str]:
    """Read a process's output line by line until a line holds `text`; returns the lines read,
    that one last (later lines stay in process.stdout). Fails, after killing the process, when
    the output ends or `timeout` seconds pass without such a line."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in iter(process.stdout.readline, ""):
            lines.append(line.rstrip("\n"))
            if text in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found.is_set():
        ended = not reader.is_alive()
        process.kill()
        reader.join(10)
        why = "the output ended" if ended else f"none within {timeout:g}s"
        raise AssertionError(f"no line with {text!r}: {why}; output so far:\n" + "\n".join(lines))
    return lines


def first_time(lines: list[tuple[float, str]], text: str) -> float:
    return next(stamp for stamp, line in lines if text in line)
