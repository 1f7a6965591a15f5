"""What a change verb shows of its run on the NAS, and the one result it reports.

Why: a rebuild's run log is some 90 lines, most of them Compose's and BuildKit's, and whoever
runs it (a person scrolling, a model paying for each line) needs a dozen. The NAS scripts mark
the lines that matter (`contract.env`'s prefixes: steps, warnings, errors, and the summary's
KEY=VALUE fields); a `View` shows those and keeps the rest, the detail, for when a step fails
(its last lines are shown then) or for `--verbose` (everything, as it comes). The whole log
stays on the NAS (`inv run-log`). With `--json` nothing is shown while it runs; `reported`
prints one object at the end, whatever the outcome, and the exit code stays the verb's.

What reaches a View is already scrubbed (`runner.Scrubbed`): no control bytes, no secrets.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, TextIO

from . import contract
from .errors import LoopError
from .runner import Output
from .text import script_error

# Lines of a failed step shown (the rest: `inv run-log`).
TAIL_LINES = 20
# The progress line on a terminal: after this long in one step, rewritten every TICK seconds.
PROGRESS_AFTER = 2.0
TICK = 1.0
# How the one-line summary names the timings, in order (the scripts' summary fields).
TIMINGS = ("sync", "build", "healthy", "gate", "aux", "switch", "verify")


def classify(line: str) -> tuple[str, str]:
    """(kind, text): kind is step, warning, error, summary or detail; text without the prefix."""
    for kind, prefix in (("step", contract.STEP_PREFIX), ("warning", contract.WARNING_PREFIX),
                         ("error", contract.ERROR_PREFIX), ("summary", contract.SUMMARY_PREFIX)):
        if line.startswith(prefix):
            return kind, line[len(prefix):]
    return "detail", line


def fields(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", text))


def parse_summary(output: str) -> dict[str, str]:
    """The fields of every summary line of a run, later ones winning (detach.sh's come first)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        kind, text = classify(line)
        if kind == "summary":
            found.update(fields(text))
    return found


def script_failure(script: str, result: Output) -> LoopError:
    """The error of a NAS script that exited non-zero (contract.py's table), in its own words:
    its last ERROR: line, else the last line it printed."""
    return contract.script_failure(script, result.exited, script_error(result.stdout + result.stderr) or result.tail(1))


def seconds(value: str | None) -> float | None:
    """`2.4s` -> 2.4 (the scripts' `elapsed`); anything else None."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", value or "")
    return float(match.group(1)) if match else None


@dataclass
class Step:
    text: str
    started: float
    seconds: float | None = None


class View:
    """A text stream (write, flush) fed a run's output: shows the marked lines as they come,
    keeps the current step's detail, and on a terminal one progress line under the last step."""

    def __init__(self, out: TextIO, *, verbose: bool = False, quiet: bool = False, progress: bool = False,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None):
        self.out, self.verbose, self.quiet, self.clock = out, verbose, quiet, clock
        self.progress = progress and not verbose and not quiet
        self.width = width or shutil.get_terminal_size().columns
        self.steps: list[Step] = []
        self.detail: deque[str] = deque(maxlen=TAIL_LINES)  # the current step's lines, warnings included
        self.summary: dict[str, str] = {}
        self.warnings: list[str] = []
        self.error = ""
        self.failed_step: str | None = None
        self.last_lines: list[str] = []
        self.pending = ""
        self.lock = threading.RLock()
        self.progress_shown = False
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None

    # --- the stream -----------------------------------------------------------------------------

    def write(self, data: str) -> None:
        with self.lock:
            self.pending += data
            *lines, self.pending = self.pending.split("\n")
            for line in lines:
                self.take(line)

    def flush(self) -> None:
        with self.lock:
            self.out.flush()

    def take(self, line: str) -> None:
        kind, text = classify(line)
        now = self.clock()
        if self.verbose:
            self.show(line)
        if kind == "summary":
            self.summary.update(fields(text))
        elif kind == "step":
            self.end_step(now)
            self.steps.append(Step(text, now))
            self.detail.clear()
            if not self.verbose:
                self.show(line)
            self.start_ticker()
        elif kind == "error":
            if not self.error:
                self.error = text
                self.fail()
        else:
            if kind == "warning":
                self.warnings.append(text)
                if not self.verbose:
                    self.show(line)
            self.detail.append(line)

    def end_step(self, now: float) -> None:
        if self.steps and self.steps[-1].seconds is None:
            self.steps[-1].seconds = round(now - self.steps[-1].started, 1)

    def fail(self) -> None:
        """The step under way failed: its last lines are shown (once), unless all was."""
        if self.failed_step is not None:
            return
        self.failed_step = self.steps[-1].text if self.steps else ""
        self.last_lines = list(self.detail)
        if self.verbose:
            return
        for line in self.last_lines:
            self.show(f"    | {line}")
        if self.summary.get("run"):
            self.show(f"    the whole log: inv run-log --id {self.summary['run']}")

    def ended(self, exited: int) -> None:
        """The run is over: what is left of the last step, and a failure without an error line."""
        with self.lock:
            self.stop()
            if self.pending:  # a last line without its newline
                line, self.pending = self.pending, ""
                self.take(line)
            self.end_step(self.clock())
            if exited != 0:
                self.fail()

    # --- the terminal ---------------------------------------------------------------------------

    def show(self, line: str) -> None:
        if self.quiet:
            return
        self.clear_progress()
        self.out.write(line + "\n")
        self.out.flush()

    def progress_line(self, now: float) -> str:
        step = self.steps[-1]
        return f"    [{now - step.started:.0f}s] {step.text}"[:max(self.width - 1, 10)]

    def tick(self) -> None:
        with self.lock:
            if self.stopped.is_set() or not self.steps:
                return
            now = self.clock()
            if now - self.steps[-1].started < PROGRESS_AFTER:
                return
            self.clear_progress()
            self.out.write(self.progress_line(now))
            self.out.flush()
            self.progress_shown = True

    def clear_progress(self) -> None:
        if self.progress_shown:
            self.out.write("\r" + " " * max(self.width - 1, 10) + "\r")
            self.progress_shown = False

    def start_ticker(self) -> None:
        if not self.progress or self.ticker is not None:
            return

        def run() -> None:
            while not self.stopped.wait(TICK):
                self.tick()

        self.ticker = threading.Thread(target=run, daemon=True)
        self.ticker.start()

    def stop(self) -> None:
        with self.lock:
            self.stopped.set()
            self.clear_progress()
            self.out.flush()


# --- the verb's result ------------------------------------------------------------------------

def timings(summary: dict[str, str], sync_seconds: float | None) -> dict[str, float]:
    """The parts of a change, in seconds, in TIMINGS' order: the sync here, the rest the script's."""
    found = {"sync": round(sync_seconds, 1)} if sync_seconds is not None else {}
    for key in TIMINGS[1:]:
        value = seconds(summary.get(key))
        if value is not None:
            found[key] = value
    return found


def summary_line(verb: str, summary: dict[str, str], total: float, sync_seconds: float | None = None) -> str:
    """The one line a change verb ends with: what changed, where, how long, and the parts of that."""
    where = f"{summary.get('new', '?')} on {summary.get('color', '?')} in {total:.1f}s"
    if verb == "rebuild-all":
        backup = summary.get("backup")
        return (f"{contract.STEP_PREFIX}rebuilt everything at {where}" + (f"; the old OAuth keys are in {backup} (to restore them "
                                                        f"see docs/deploys.md#restoring-oauth-keys)" if backup else ""))
    parts = [f"{key} {value:.1f}s" for key, value in timings(summary, sync_seconds).items()]
    parts += [f"tools {summary['tools']}"] if summary.get("tools") else []
    return f"{contract.STEP_PREFIX}{summary.get('old', '?')} -> {where}" + (": " + "  ".join(parts) if parts else "")


def status_of(code: int) -> str:
    """The JSON's `status`, one word a script can branch on: `bad input` (a setting or a flag:
    nothing was tried, fix the call), `refused` (a safety check: the call was right, the state
    was not), `not finished`, `interrupted`, and `failed` for the rest."""
    from .errors import ConfigError, Refused, StillRunning

    return {0: "ok", ConfigError.code: "bad input", Refused.code: "refused", StillRunning.code: "not finished",
            130: "interrupted"}.get(code, "failed")


@dataclass
class Report:
    """What a change verb did, for its one summary line or its JSON object."""

    verb: str
    verbose: bool = False
    as_json: bool = False
    out: TextIO = field(default=sys.stdout, repr=False)
    started: float = field(default_factory=time.monotonic)
    commit: str | None = None
    sync_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    run: View | None = None

    def attach(self, session) -> None:
        """The session's verb reports here; with --json its lines are kept for the object."""
        from .errors import ConfigError

        if self.as_json and (session.dry or session.nas.echo):
            raise ConfigError("--json does not go with --dry or --echo: they print commands on stdout")
        session.report = self
        if self.as_json:
            session.held = self.notes

    def view(self) -> View:
        """The stream for the run's output; one per verb."""
        self.run = View(self.out, verbose=self.verbose, quiet=self.as_json,
                        progress=not self.as_json and self.out.isatty())
        return self.run

    @property
    def summary(self) -> dict[str, str]:
        return self.run.summary if self.run else {}

    def timings(self) -> dict[str, float]:
        return timings(self.summary, self.sync_seconds)

    def result(self, code: int, message: str = "") -> dict:
        run, summary = self.run, self.summary
        return {
            "verb": self.verb, "status": status_of(code), "exit": code,
            "commit": self.commit or summary.get("new"), "old": summary.get("old"), "new": summary.get("new"), "color": summary.get("color"),
            "seconds": round(time.monotonic() - self.started, 1), "timings": self.timings(),
            "tools": summary.get("tools"), "backup": summary.get("backup"),
            "steps": [{"step": s.text, "seconds": s.seconds} for s in run.steps] if run else [],
            "warnings": run.warnings if run else [], "notes": self.notes,
            "failed_step": run.failed_step if run and code else None,
            "last_lines": run.last_lines if run and code else [],
            "error": message or None, "run": summary.get("run"), "log": summary.get("log"),
        }


@contextmanager
def reported(verb: str, verbose: bool = False, as_json: bool = False, out: TextIO = sys.stdout) -> Iterator[Report]:
    """Around a change verb's session: with --json, one object on `out` whatever the outcome (an
    Exit from the session included: its code stays the verb's, its message goes to stderr too)."""
    from invoke.exceptions import Exit

    report = Report(verb, verbose=verbose, as_json=as_json, out=out)
    try:
        yield report
    except Exit as exit:
        if as_json:
            if report.run:
                report.run.stop()
            out.write(json.dumps(report.result(exit.code, exit.message or "")) + "\n")
            out.flush()
        raise
    if as_json:
        out.write(json.dumps(report.result(0)) + "\n")
        out.flush()
