"""Invoke's own flag errors, told as each verb tells bad input.

Why: `inv status --bogus` or `inv logs --tail` (no value) fails in Invoke's parser before any
task runs, and Invoke prints its message and exits 1: a script reads that as the verb's own
failure, a monitor as WARNING. tasks.py calls `refuse_bad_flags` while Invoke loads it, which
parses argv as Invoke will (its core flags, these tasks) and turns an error in a verb's flags
into one line and exit 2, the code of every other bad input (with `--json`, the change verbs'
one object too), or in a check verb its UNKNOWN plugin line and exit 3. This module needs only
Invoke, so `inv --list` and the checks load nothing else for it.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Iterable


def _with_own_help(task: Any) -> Any:
    clone = copy.copy(task)
    clone.help = dict(task.help)
    return clone


def flag_error(argv: list[str], tasks: Iterable[Any]) -> tuple[str, str] | None:
    """(verb, reason) when Invoke would refuse a flag of one of `tasks` in `argv` (a sys.argv),
    parsed with Invoke's own core flags and parser; None when it would not, or when the error is
    not in a verb's flags (a core flag, an unknown verb: Invoke's own message stands). Only
    looked at when argv names one of the verbs, so importing tasks.py elsewhere costs nothing."""
    from invoke import Collection, Program
    from invoke.exceptions import ParseError
    from invoke.parser import Parser

    # Invoke pops each flag's help from its task as it builds the task's parser context: build
    # them from copies, or `inv --help VERB` would show the flags without their help.
    contexts = Collection(*(_with_own_help(task) for task in tasks)).to_contexts()
    if not {context.name for context in contexts} & set(argv[1:]):
        return None
    try:
        Parser(initial=Program().initial_context, contexts=contexts).parse_argv(argv[1:])
    except ParseError as exc:
        verb = getattr(exc.context, "name", None)
        if not verb:
            return None
        # Invoke names a flag missing its value by its Argument's repr
        reason = re.sub(r"^Flag <Argument: (\w+).*> needed value and was not given one!$",
                        lambda m: f"--{m.group(1).replace('_', '-')} needs a value", str(exc))
        return verb, f"{reason} (see: inv --help {verb})"
    return None


def refuse_bad_flags(argv: list[str], tasks: Iterable[Any], *, checks: Iterable[str], reported: Iterable[str]) -> None:
    """A flag error in a verb's flags, told as that verb tells bad input: `checks` (the plugin
    verbs) exit 3 with their UNKNOWN line; `reported` (the verbs whose `--json` is
    runlog's one object) print that object when `--json` was given; every verb prints one
    line and exits 2."""
    found = flag_error(argv, tasks)
    if found is None:
        return
    verb, reason = found
    as_json = "--json" in argv
    if verb in set(checks):
        from .checks.cli import refuse_flag

        raise SystemExit(refuse_flag(verb, reason, as_json=as_json))
    from . import runlog
    from .cli import fail
    from .errors import ConfigError

    exit = fail(verb, ConfigError(reason))
    if as_json and verb in set(reported):
        with runlog.reported(verb, as_json=True):
            raise exit
    raise exit
