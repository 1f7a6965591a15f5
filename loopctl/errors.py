"""Expected failures, each with its own exit code.

Why distinct codes: cron wrappers and scripts can tell "the NAS is down" from
"the password is wrong" from "a command on the NAS failed" without parsing text.
The monitoring verbs (`health`, `mcp-check`) use the plugin codes 0-3 instead.
"""


class LoopError(Exception):
    """A failure the user can act on: printed as one line, no traceback."""

    code = 1
    label = "error"


class ConfigError(LoopError):
    """A missing or malformed setting, or bad input to a verb."""

    code = 2


class Unreachable(LoopError):
    code = 3


class AuthFailed(LoopError):
    """SSH authentication or sudo password rejected."""

    code = 4


class HostKeyError(LoopError):
    code = 5


class RemoteFailed(LoopError):
    """A command on the NAS (or a local git command) exited non-zero."""

    code = 6


class Refused(LoopError):
    """A safety check said no: dirty tree, drifted scripts, deploy lock held, no confirmation."""

    code = 7


class CheckoutUnreadable(Refused):
    """A read of the NAS checkout ran out of time: the app writes its .git, and something there
    (a FIFO in place of a file) blocks reads."""


class Locked(Refused):
    """Another deploy, rollback or rebuild-all holds the lock: one wording, whichever side
    (the preflight or a NAS script's own `flock`) noticed it first."""

    def __init__(self, holder: str):
        super().__init__(f"a deploy is already running: {holder.removeprefix('refused: ')}")


class StillRunning(LoopError):
    """The change goes on on the NAS, but its end was not seen here (the wrapper that waits for
    it there ended first): neither a success nor a failure yet."""

    code = 8
    label = "not finished"
