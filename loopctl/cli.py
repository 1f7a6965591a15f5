"""Glue between Invoke and the package: one session per verb.

A session loads and checks the settings before anything connects, opens at most one SSH
connection (lazily, on the first remote command), writes the audit record for verbs that
change the NAS, and turns expected failures into one line on stderr and a distinct exit
code instead of a traceback.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from invoke import Context
from invoke.exceptions import Exit

from . import audit, settings as settings_module
from .errors import LoopError
from .session import Session
from .text import error_line


def fail(verb: str, error: LoopError, secrets: Iterable[str] = ()) -> Exit:
    """One line, secrets and URL credentials blanked: messages may quote settings and flags, or
    end with a NAS command's stderr, which must not drive the terminal. Every verb's error is
    printed here; `secrets` are the loaded settings' (none when they did not load)."""
    return Exit(f"inv {verb}: {error.label}: {error_line(str(error), secrets)}", error.code)


def load_settings(verb: str, *required: str) -> settings_module.Settings:
    try:
        loaded = settings_module.load()
        loaded.require(*required)
        return loaded
    except LoopError as error:
        raise fail(verb, error) from None


@contextmanager
def session(c: Context, verb: str, args: dict[str, Any] | None = None, *, changes: bool,
            nas: bool = True) -> Iterator[Session]:
    """Run a verb. `changes`: it may change the NAS, so it leaves an audit record. `nas`: it
    reaches the NAS, so NAS_HOST and NAS_USER must be set (`inv audit --local` does not)."""
    required = settings_module.SSH_REQUIRED if nas else ()
    session = Session(verb, load_settings(verb, *required), dry=bool(c.config.run.dry), echo=bool(c.config.run.echo))
    started, status = time.monotonic(), 1
    try:
        yield session
        status = 0
    except LoopError as error:
        status = error.code
        raise fail(verb, error, session.settings.secrets()) from None
    except KeyboardInterrupt:
        status = 130
        raise Exit(f"inv {verb}: interrupted", 130) from None
    except BrokenPipeError:
        # The reader went away (`inv status | head`): stop writing, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise Exit(code=141) from None
    finally:
        if changes and not session.dry:
            record_audit(session, args or {}, status, time.monotonic() - started)
        session.nas.close()


def record_audit(session: Session, args: dict[str, Any], status: int, seconds: float) -> None:
    """Locally always; on the NAS when this verb reached it (a verb refused before
    connecting, or a NAS that cannot be reached, leaves the local record only)."""
    record = audit.make_record(session.verb, args, session.nas.where, status, seconds)
    audit.append_local(session.settings.audit_log, record)
    if not session.nas.is_open:
        return
    try:
        audit.append_remote(session.nas, record)
    except LoopError as error:
        if "command not found" in str(error) and status != 0:
            return  # loopctl is not installed there (a refused setup): no trail to write to
        session.warn(f"the audit record was kept locally ({session.settings.audit_log}) but not on the NAS: {error}")
