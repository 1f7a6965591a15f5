"""`inv health`: is the app answering, is the auth service's JWKS served, is the certificate fresh?

Why retries here and nowhere else: cron runs this every few minutes and a single dropped
connection during a container restart should not page anyone, so a failed /health
request is retried with backoff (within the check's deadline) before it counts.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .. import contract
from ..errors import ConfigError
from . import certs
from .http import CheckFailed, Deadline, Http, Reply, hint
from .plugin import Perf, Report, Status, plural

SERVICE = "LOOP"
# X-Loop-Fallback's value when the proxy's warm standby answered for a live color that is down
# (deploy/nginx/nginx.conf).
STANDBY_FALLBACK = "standby"
BACKOFF_SECONDS = 0.5


@dataclass(frozen=True)
class Expectation:
    """HEALTH_EXPECT: `key=value` the health JSON must hold."""

    key: str
    value: str

    @classmethod
    def parse(cls, raw: str) -> Expectation | None:
        if not raw:
            return None
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"HEALTH_EXPECT={raw!r} is invalid: expected key=value, e.g. status=ok")
        return cls(key.strip(), value.strip())


def _as_text(value: Any) -> str:
    """A JSON value as HEALTH_EXPECT spells it: true, false, null, 42, ok."""
    return json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)


def body_problem(body: Any, expect: Expectation | None) -> str | None:
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    if expect is None:
        return None
    if expect.key not in body:
        return f"the body has no {expect.key!r}"
    actual = _as_text(body[expect.key])
    return None if actual == expect.value else f"{expect.key} is {actual!r}, expected {expect.value!r}"


def reply_problem(reply: Reply, expect: Expectation | None) -> str | None:
    if 300 <= reply.status < 400:
        return f"redirected to {reply.headers.get('location', '?')}; point PUBLIC_URL there"
    if reply.status != 200:
        return f"HTTP {reply.status} ({hint(reply)})"
    body = reply.json()
    if body is None:
        return f"HTTP 200 but the body is not JSON ({hint(reply)})"
    problem = body_problem(body, expect)
    return f"HTTP 200 but {problem}" if problem else None


def _retried(attempt: int) -> str:
    return f" after {plural(attempt, 'retry', 'retries')}" if attempt else ""


def check_endpoint(report: Report, http: Http, url: str, settings, expect: Expectation | None) -> bool:
    """GET /health, retrying failures with backoff; True when it answered as expected."""
    path = urlsplit(url).path or "/"
    for attempt in range(settings.check_retries + 1):
        reply = None
        try:
            reply = http.fetch("GET", url, headers={"Accept": "application/json"})
            problem = reply_problem(reply, expect)
        except CheckFailed as failure:
            problem = str(failure)
        pause = BACKOFF_SECONDS * 2**attempt
        if problem is None or attempt == settings.check_retries or http.deadline.remaining() <= pause:
            break
        time.sleep(pause)
    if problem is not None:
        report.add(Status.CRITICAL, f"{path}: {problem}{_retried(attempt)}")
        return False
    warn, crit = settings.health_warn_seconds, settings.health_crit_seconds
    status = Status.CRITICAL if reply.seconds > crit else Status.WARNING if reply.seconds > warn else Status.OK
    slow = f" (slower than {crit if status == Status.CRITICAL else warn:g} s)" if status else ""
    report.add(status, f"{path} {reply.status} in {reply.seconds * 1000:.0f} ms{slow}{_retried(attempt)}")
    report.perfdata.append(Perf("time", round(reply.seconds, 3), "s", f"{warn:g}", f"{crit:g}"))
    standby = served_by_standby(reply)
    if standby is not None:
        report.add(Status.WARNING, f"the warm standby{standby} answers: the live release is down; "
                                   f"`inv rollback` makes the standby live, `inv rebuild` deploys again")
        report.details["served_by_standby"] = True
    return True


def served_by_standby(reply: Reply) -> str | None:
    """When loopctl's proxy sent the request to the warm standby because the live color could
    not take it (its X-Loop-Fallback header): " (color, commit X)", what can be checked of it
    ("" if nothing); else None."""
    if reply.headers.get("x-loop-fallback", "").strip() != STANDBY_FALLBACK:
        return None
    known = []
    color = reply.headers.get("x-loop-color", "").strip()
    if color in contract.COLORS:
        known.append(color)
    body = reply.json()
    commit = body.get("commit") if isinstance(body, dict) else None
    if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{7,40}", commit):
        known.append(f"commit {commit[:12]}")
    return f" ({', '.join(known)})" if known else ""


def check_jwks(report: Report, http: Http, url: str) -> None:
    try:
        reply = http.fetch("GET", url, headers={"Accept": "application/json"})
    except CheckFailed as failure:
        report.add(Status.CRITICAL, f"JWKS: {failure}")
        return
    document = reply.json()
    keys = document.get("keys") if isinstance(document, dict) else None
    if reply.status != 200:
        report.add(Status.CRITICAL, f"JWKS: HTTP {reply.status} ({hint(reply)})")
    elif not isinstance(keys, list):
        report.add(Status.CRITICAL, f"JWKS: not a key set ({hint(reply)})")
    elif not keys:
        report.add(Status.CRITICAL, "JWKS: the key set is empty")
    elif not all(isinstance(key, dict) and key.get("kty") for key in keys):
        report.add(Status.CRITICAL, "JWKS: a key has no kty")
    else:
        report.add(Status.OK, f"JWKS {plural(len(keys), 'key')}")
        report.perfdata.append(Perf("jwks_keys", len(keys)))


def check_certificate(report: Report, http: Http, url: str, settings, verify: bool | str) -> None:
    parts = urlsplit(url)
    try:
        not_after = certs.expiry(parts.hostname, parts.port or 443, verify, http.deadline.limit(settings.check_timeout))
    except CheckFailed as failure:
        report.add(Status.CRITICAL, str(failure))
        return
    days = certs.days_left(not_after)
    warn, crit = settings.cert_warn_days, settings.cert_crit_days
    status = Status.CRITICAL if days < crit else Status.WARNING if days < warn else Status.OK
    date = not_after.date().isoformat()
    left = plural(days, "day")
    report.add(status, f"certificate expires in {left} ({date})" if status else f"certificate valid {left}")
    report.perfdata.append(Perf("cert_days", days, "", f"{warn}:", f"{crit}:"))
    report.details["certificate_not_after"] = not_after.isoformat()


def validate(settings) -> Expectation | None:
    if settings.health_warn_seconds > settings.health_crit_seconds:
        raise ConfigError("HEALTH_WARN_SECONDS must not be above HEALTH_CRIT_SECONDS")
    if settings.cert_warn_days < settings.cert_crit_days:
        raise ConfigError("CERT_WARN_DAYS must not be below CERT_CRIT_DAYS")
    return Expectation.parse(settings.health_expect)


def run(settings, verify: bool | str) -> Report:
    expect = validate(settings)
    url = settings.public_url + settings.health_path
    report = Report(SERVICE, details={"url": url})
    http = Http(settings.check_timeout, Deadline(settings.check_deadline), verify)
    try:
        healthy = check_endpoint(report, http, url, settings, expect)
        if settings.jwks_url:
            check_jwks(report, http, settings.jwks_url)
        if healthy and url.startswith("https://"):
            check_certificate(report, http, url, settings, verify)
    finally:
        http.close()
    return report
