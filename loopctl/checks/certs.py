"""Days until the public certificate expires.

Why a separate TLS connection: requests verifies the chain but does not expose the peer
certificate, and a Let's Encrypt renewal that silently stopped shows up here weeks before
ChatGPT starts failing. The same trust (system CAs or CHECK_CA_BUNDLE) is used, so a
certificate that verifies here is the one requests just accepted.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from datetime import datetime, timezone

import requests.certs

from .http import CheckFailed

DAY = 86400


def trusted_cafile(verify: bool | str) -> str:
    """The CA file requests itself trusts for this `verify` value."""
    if isinstance(verify, str):
        return verify
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or requests.certs.where()


def expiry(host: str, port: int, verify: bool | str, timeout: float) -> datetime:
    context = ssl.create_default_context(cafile=trusted_cafile(verify))
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                not_after = tls.getpeercert()["notAfter"]
    except ssl.SSLCertVerificationError as exc:
        raise CheckFailed(f"certificate not trusted: {exc.verify_message}") from None
    except OSError as exc:
        raise CheckFailed(f"certificate check failed: {exc.strerror or type(exc).__name__}") from None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), timezone.utc)


def days_left(not_after: datetime, now: float | None = None) -> int:
    return int((not_after.timestamp() - (time.time() if now is None else now)) // DAY)
