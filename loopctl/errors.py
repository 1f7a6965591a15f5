"""Expected failures, each with its own exit code.

Why distinct codes: cron wrappers and scripts can tell "the NAS is down" from
"the password is wrong" from "a command on the NAS failed" without parsing text.
The monitoring verbs (`health`, `mcp-check`) use the plugin codes 0-3 instead.
"""


class LoopError(Exception):
    """A failure the user can act on: printed as one line, no traceback. Each kind names its
    exit code (and the word `inv` prints before its message) in its class line."""

    code = 1
    label = "error"

    def __init_subclass__(cls, code: int | None = None, label: str | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = cls.code if code is None else code
        cls.label = cls.label if label is None else label


class ConfigError(LoopError, code=2):
    """A missing or malformed setting, or bad input to a verb."""


class Unreachable(LoopError, code=3):
    """No SSH answer from the NAS: a name that does not resolve, a refused or silent port, or
    something other than SSH on it."""


class AuthFailed(LoopError, code=4):
    """SSH authentication or sudo password rejected."""


class HostKeyError(LoopError, code=5):
    """The NAS's host key is not pinned in NAS_KNOWN_HOSTS, or differs from the pinned one."""


class RemoteFailed(LoopError, code=6):
    """A command on the NAS (or a local git command) exited non-zero."""


class Refused(LoopError, code=7):
    """A safety check said no: dirty tree, drifted scripts, deploy lock held, no confirmation."""


class CheckoutUnreadable(Refused):
    """A read of the NAS checkout ran out of time: the app writes its .git, and something there
    (a FIFO in place of a file) blocks reads."""


class Locked(Refused):
    """Another deploy, rollback or rebuild-all holds the lock: one wording, whichever side
    (the preflight or a NAS script's own `flock`) noticed it first."""

    def __init__(self, holder: str):
        super().__init__(f"a deploy is already running: {holder.removeprefix('refused: ')}")


class StillRunning(LoopError, code=8, label="not finished"):
    """The change goes on on the NAS, but its end was not seen here (the wrapper that waits for
    it there ended first): neither a success nor a failure yet."""
