"""Tell someone when health changes, once per change: a state file, a webhook, a ping URL.

Why a state file: cron runs `inv health` every few minutes and an alert on every failing
run would be noise. The file remembers the last status and the status the last delivered
alert announced; a webhook is sent when they differ, so an alert that could not be
delivered is tried again on the next run instead of being lost. The healthchecks.io-style
ping goes out on every run (that service alerts when pings stop). Delivery problems go to
stderr and never change the verdict.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

from .http import CheckFailed, Deadline, Http
from .plugin import Report, Status, scrub

NTFY_PRIORITY = {Status.OK: "default", Status.WARNING: "high", Status.CRITICAL: "urgent"}
NTFY_TAGS = {Status.OK: "white_check_mark", Status.WARNING: "warning", Status.CRITICAL: "rotating_light"}


@dataclass
class State:
    status: str
    since: str
    summary: str
    alerted: str  # the status the last delivered alert announced


def load_state(path: Path) -> State | None:
    try:
        return State(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        print(f"loopctl: ignoring unreadable state file {path} ({type(exc).__name__})", file=sys.stderr)
        return None


def save_state(path: Path, state: State) -> None:
    """Write atomically: a cron run killed mid-write must not leave half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".health-", delete=False) as tmp:
        json.dump(asdict(state), tmp, indent=2)
    os.replace(tmp.name, path)


def webhook_message(report: Report, previous: str, fmt: str, public_url: str, now: str) -> tuple[bytes, dict]:
    """The alert body: small JSON, or for ntfy-style services plain text with title headers."""
    status = report.status
    if fmt == "text":
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": f"{report.service} {status.name} (was {previous})",
            "Priority": NTFY_PRIORITY[status],
            "Tags": NTFY_TAGS[status],
        }
        return report.line().encode(), headers
    body = {
        "service": report.service, "status": status.name, "previous": previous, "summary": report.summary(),
        "line": report.line(), "url": public_url, "host": socket.gethostname(), "time": now,
    }
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def ping_url(base: str, status: Status) -> str:
    """healthchecks.io convention: the URL itself for success, `/fail` appended on failure."""
    if status != Status.CRITICAL:
        return base
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


def deliver(url: str, data: bytes, headers: dict, timeout: float) -> str | None:
    """POST and return why it failed, or None; the reason never contains the URL. Only the
    status counts: the body is never read, so a receiver that answers without end costs
    nothing, and the whole delivery is over within `timeout`."""
    http = Http(timeout, Deadline(timeout))
    try:
        until = http.until()
        exchange = http.start("POST", url, data=data, headers=headers)
        try:
            status = exchange.response(until).status_code
        finally:
            exchange.close()
    except CheckFailed as failure:
        return str(failure)
    finally:
        http.close()
    return None if 200 <= status < 300 else f"HTTP {status}"


def notify(report: Report, settings, secrets: Iterable[str]) -> dict[str, Any]:
    """Alert on a change of status, ping, remember the state; returns what happened, for --json."""
    secrets = list(secrets)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path: Path = settings.health_state_file
    previous = load_state(path)
    current = report.status.name
    announced = previous.alerted if previous else Status.OK.name
    outcome: dict[str, Any] = {"previous": previous.status if previous else None, "alert": "none"}
    if current != announced:
        error = None
        if settings.alert_webhook_url:
            data, headers = webhook_message(
                report, announced, settings.alert_webhook_format, settings.public_url, now)
            error = deliver(settings.alert_webhook_url, scrub(data.decode(), secrets).encode(), headers,
                            settings.check_timeout)
        outcome["alert"] = f"failed: {error}" if error else "sent" if settings.alert_webhook_url else "not configured"
        if error:
            print(f"loopctl: alert webhook failed ({error}); it is retried on the next run", file=sys.stderr)
        else:
            announced = current
    if settings.healthcheck_ping_url:
        error = deliver(ping_url(settings.healthcheck_ping_url, report.status),
                        scrub(report.line(), secrets).encode(), {"Content-Type": "text/plain"},
                        settings.check_timeout)
        outcome["ping"] = f"failed: {error}" if error else "sent"
        if error:
            print(f"loopctl: healthcheck ping failed ({error})", file=sys.stderr)
    since = previous.since if previous and previous.status == current else now
    try:
        save_state(path, State(current, since, scrub(report.summary(), secrets), announced))
    except OSError as exc:
        print(f"loopctl: cannot write the state file {path} ({exc.strerror})", file=sys.stderr)
    return outcome
