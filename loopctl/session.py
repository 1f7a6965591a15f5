"""What a verb works with: its settings, the NAS and local runners, and how to print.

Why its own module: every domain module (stack, deploy, sync, install) takes a Session,
and none of them should import the Invoke glue (`cli.py`) to get it. It imports only the
runners (`runner.Local`, `ssh.Nas`) and the settings.
"""

from __future__ import annotations

import sys

from .runner import Local
from .settings import Settings
from .ssh import Nas
from .text import printable


class Session:
    def __init__(self, verb: str, settings: Settings, dry: bool = False, echo: bool = False):
        self.verb = verb
        self.settings = settings
        self.nas = Nas(settings, dry=dry, echo=echo)
        self.local = Local(settings, dry=dry, echo=echo)
        self.dry = dry
        self.report = None  # a change verb's runlog.Report: how its NAS run is shown
        self.held: list[str] | None = None  # with --json, what say() would have printed

    def say(self, text: str = "") -> None:
        """Print a line; what the NAS or git said may be part of it, so no control characters."""
        if self.held is not None:
            self.held.append(printable(text))
            return
        print(printable(text), flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {printable(text)}", file=sys.stderr, flush=True)
