"""Results in the monitoring-plugin convention: one status line, perfdata, exit 0-3.

Why: cron wrappers, Nagios, Icinga and friends all read `SERVICE STATUS - text | perfdata`
and the exit codes 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Both checks build a `Report`
and hand it to `emit`, which is also the one place secrets are scrubbed from output. Much
of a report is the server's own text (page titles, error messages, server names): it is
kept free of control characters, so it cannot drive the terminal of whoever reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Iterable

from ..text import one_line, printable, scrub

TEXT_LIMIT = 160


class Status(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Perf:
    """One perfdata item: `label=value[unit];warn;crit;min;max`, trailing empty fields dropped."""

    label: str
    value: float
    unit: str = ""
    warn: str = ""
    crit: str = ""
    minimum: str = "0"

    def __str__(self) -> str:
        fields = [f"{self.label}={self.value:g}{self.unit}", self.warn, self.crit, self.minimum]
        return ";".join(fields).rstrip(";")


@dataclass(frozen=True)
class Finding:
    """The verdict on one aspect (the endpoint, the JWKS, the certificate...)."""

    status: Status
    text: str


@dataclass
class Report:
    service: str
    findings: list[Finding] = field(default_factory=list)
    perfdata: list[Perf] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, status: Status, text: str) -> None:
        self.findings.append(Finding(status, printable(text)))

    @property
    def status(self) -> Status:
        return max((f.status for f in self.findings), default=Status.UNKNOWN)

    def summary(self) -> str:
        """All findings when OK; otherwise only the troubles, worst first."""
        if self.status == Status.OK:
            return "; ".join(finding_text(f.text) for f in self.findings)
        troubles = sorted((f for f in self.findings if f.status != Status.OK), key=lambda f: -f.status)
        return "; ".join(finding_text(f.text) for f in troubles)

    def line(self) -> str:
        head = f"{self.service} {self.status.name} - {self.summary()}"
        return f"{head} | {' '.join(map(str, self.perfdata))}" if self.perfdata else head

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": self.status.name,
            "exit_code": int(self.status),
            "summary": self.summary(),
            "line": self.line(),
            "findings": [{"status": f.status.name, "text": f.text} for f in self.findings],
            "perfdata": [str(p) for p in self.perfdata],
            **_printable(self.details),
        }


def _printable(value: Any) -> Any:
    """Details hold what the server said (its name, its OAuth metadata): strings made printable."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(item) for item in value]
    return value


def plural(count: int, noun: str, nouns: str = "") -> str:
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def unknown(service: str, reason: str) -> Report:
    return Report(service, [Finding(Status.UNKNOWN, reason)])


def finding_text(text: str) -> str:
    """Server-supplied text as a finding in the plugin line: one short line without `|`, which
    would start the perfdata."""
    return one_line(text, TEXT_LIMIT).replace("|", "/")


def render(report: Report, *, as_json: bool, secrets: Iterable[str]) -> str:
    text = json.dumps(report.as_dict(), indent=2) if as_json else report.line()
    return scrub(text, secrets)


def emit(report: Report, *, as_json: bool, quiet: bool, secrets: Iterable[str]) -> int:
    """Print the report (nothing at all when quiet and OK) and return the exit code."""
    if not (quiet and report.status == Status.OK):
        print(render(report, as_json=as_json, secrets=secrets), flush=True)
    return int(report.status)
