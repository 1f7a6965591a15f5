"""Typing the sudo password on the NAS: the prompt sudo is given and the watcher that answers it.

Why the sudo dance: the password is typed into sudo's own prompt by a watcher on the
SSH channel (`sudo --stdin` reads it). It never appears in a command line, an echo, an
environment variable or the output, unlike the echoed password piped into sudo it replaces.
The prompt is new for every command and answered at most once, before the command's own
output begins (see `SudoPrompt`), so nothing a command prints can draw the password out.

Why its own module: when to answer is a rule about text alone (which stream spoke, what
came first), decided without a connection, so it is read and tested apart from the SSH
runner that hands it the streams.
"""

from __future__ import annotations

import threading
from secrets import token_hex

SUDO_PROMPT = "[loopctl {}] sudo password:"
SHOWN_PROMPT = SUDO_PROMPT.format("<random>")  # what --dry and --echo print: stable and readable
SUDO_REFUSED = "Sorry, try again."


def new_prompt() -> str:
    """A sudo prompt no command can know in advance (64 random bits)."""
    return SUDO_PROMPT.format(token_hex(8))


class SudoPrompt:
    """Types the password into sudo's prompt: once, and only while sudo is the one talking.

    sudo prints its prompt before it runs the command, on stderr (on the one stream of a
    pty), and then waits. So the prompt counts only as the last line received so far on its
    stream, the first there, with nothing yet on the other stream; lines before it on its
    own stream are sudo's (a first-use lecture, a warning). Anything else that arrives first
    is the command's output, and from then on nothing is answered, nor after the one answer:
    whatever a command prints (a prompt it guessed or read from `ps`, the old fixed
    `[loopctl] sudo password:`) cannot draw the password out. Invoke hands a watcher each
    stream's whole text from that stream's reader thread, hence the per-thread counts.
    """

    def __init__(self, prompt: str, password: str):
        self.prompt, self.password = prompt, password
        self.lock = threading.Lock()
        self.received: dict[int, int] = {}  # characters seen so far, per reader thread
        self.closed = False  # the command's output began: never answer
        self.answered: tuple[int, int] | None = None  # (reader thread, characters seen then)
        self.settled = False  # sudo took the password (or it cannot tell any more)

    def submit(self, stream: str) -> list[str]:
        me = threading.get_ident()
        with self.lock:
            self.received[me] = len(stream)
            if self.answered is not None:
                self._check_accepted(me, stream)
                return []
            if self.closed or not stream:
                return []
            others_spoke = any(count for thread, count in self.received.items() if thread != me)
            last_line = stream.rpartition("\n")[2]
            if others_spoke or not self.prompt.startswith(last_line):
                self.closed = True
                return []
            if last_line != self.prompt or stream.count(self.prompt) != 1:
                return []  # sudo's lines so far, or the start of its prompt: wait for more
            self.answered = (me, len(stream))
            return [self.password + "\n"]

    def _check_accepted(self, me: int, stream: str) -> None:
        """After the answer, sudo either runs the command or says it refused the password."""
        thread, seen = self.answered
        if self.settled or me != thread:
            return
        reply = stream[seen:].lstrip("\r\n")
        if reply.startswith(SUDO_REFUSED):
            from invoke.exceptions import ResponseNotAccepted

            self.settled = True
            raise ResponseNotAccepted("sudo refused the password")
        self.settled = not SUDO_REFUSED.startswith(reply)
