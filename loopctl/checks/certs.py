"""Days until the public certificate expires.

Why a separate TLS connection: requests verifies the chain but does not expose the peer
certificate, and a Let's Encrypt renewal that silently stopped shows up here weeks before
ChatGPT starts failing. The same trust (system CAs or CHECK_CA_BUNDLE) is used, so a
certificate that verifies here is the one requests just accepted. A socket timeout bounds
each read, not the handshake, so a watchdog shuts the socket when the time is up: a server
that drips its certificate a byte at a time cannot hold the check past its deadline.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import requests.certs

from .http import CheckFailed

DAY = 86400


def trusted_cafile(verify: bool | str) -> str:
    """The CA file requests itself trusts for this `verify` value."""
    if isinstance(verify, str):
        return verify
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or requests.certs.where()


def expiry(host: str, port: int, verify: bool | str, timeout: float) -> datetime:
    """The certificate's end of validity, within `timeout` seconds in all."""
    context = ssl.create_default_context(cafile=trusted_cafile(verify))
    watchdog = Watchdog(timeout)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with watchdog.guarding(raw), context.wrap_socket(raw, server_hostname=host) as tls:
                not_after = tls.getpeercert()["notAfter"]
    except ssl.SSLCertVerificationError as exc:
        raise CheckFailed(f"certificate not trusted: {exc.verify_message}") from None
    except OSError as exc:
        if watchdog.fired.is_set():
            raise CheckFailed(f"certificate check: no answer within {timeout:.3g} s") from None
        raise CheckFailed(f"certificate check failed: {exc.strerror or type(exc).__name__}") from None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), timezone.utc)


class Watchdog:
    """Shuts a socket once `seconds` have passed, which ends any read blocked on it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.fired = threading.Event()

    @contextmanager
    def guarding(self, sock: socket.socket) -> Iterator[None]:
        timer = threading.Timer(self.seconds, self._shut, [sock])
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _shut(self, sock: socket.socket) -> None:
        self.fired.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def days_left(not_after: datetime, now: float | None = None) -> int:
    return int((not_after.timestamp() - (time.time() if now is None else now)) // DAY)
