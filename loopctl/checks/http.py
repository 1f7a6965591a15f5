"""HTTP exchanges with a hard time limit, and failures told in a few plain words.

Why not plain `requests.get(timeout=...)`: that timeout bounds each socket read, not the
exchange, so a server that trickles bytes or keep-alive comments on an SSE stream could
hold a cron check forever. Here each exchange runs on a helper thread that feeds a queue;
the caller waits on the queue until its own deadline and then shuts the socket, which
also ends the helper. The queue is short and bodies, lines and events have limits, so a
server that sends without end costs a few MiB at most, never the machine's memory.
Failures become short reasons that never quote a URL, because webhook and ping URLs
carry tokens.
"""

from __future__ import annotations

import http.client
import json
import queue
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import requests
from requests.structures import CaseInsensitiveDict

USER_AGENT = "loopctl-check/1"
CHUNK = 65536
QUEUED_CHUNKS = 16  # read ahead at most 1 MiB; the helper then waits for the caller
BODY_LIMIT = 1024 * 1024  # a health answer, a metadata document or an error page is far smaller
_END = object()


class CheckFailed(Exception):
    """A reason the check is CRITICAL, already worded for the status line."""


class Deadline:
    """The time a whole check may take; each wait is the smaller of its timeout and what is left."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def limit(self, timeout: float) -> float:
        left = self.remaining()
        if left <= 0:
            raise CheckFailed(f"gave up after the check's {self.seconds:g} s deadline")
        return min(timeout, left)


@dataclass(frozen=True)
class Until:
    """The moment a wait ends, and how long it was allowed to take (for the message)."""

    at: float
    seconds: float

    def left(self) -> float:
        return max(self.at - time.monotonic(), 0)


@dataclass
class Reply:
    """A complete HTTP answer: what the checks inspect and what `hint` summarises."""

    status: int
    headers: CaseInsensitiveDict
    body: bytes
    seconds: float

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The decoded body, or None when it is not JSON (or nested too deep to decode)."""
        return decode_json(self.body)


def decode_json(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


class Exchange:
    """One request whose headers and body arrive through a queue filled by a helper thread."""

    def __init__(self, session: requests.Session, method: str, url: str, timeout: float, **kwargs: Any):
        self.timeout = timeout
        self.started = time.monotonic()
        self._queue: queue.Queue[Any] = queue.Queue(QUEUED_CHUNKS)
        self._response: requests.Response | None = None
        self._closed = False
        threading.Thread(target=self._run, args=(session, method, url, kwargs), daemon=True).start()

    def _run(self, session: requests.Session, method: str, url: str, kwargs: dict[str, Any]) -> None:
        response = None
        try:
            response = session.request(
                method, url, stream=True, allow_redirects=False, timeout=self.timeout, **kwargs
            )
            self._hand_over(response)
            while not self._closed and (chunk := response.raw.read1(CHUNK, decode_content=True)):
                self._hand_over(chunk)
            self._hand_over(_END)
        except Exception as exc:  # handed to the waiting caller, who words it
            self._hand_over(exc)
        if self._closed and response is not None:
            response.close()  # the caller gave up before the answer came: release it here

    def _hand_over(self, item: Any) -> None:
        """Queue an item, waiting while the caller is behind; nothing once it has gone."""
        while not self._closed:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next(self, until: Until) -> Any:
        try:
            if until.left() <= 0:  # a queue that is never empty must not outlast the deadline
                raise queue.Empty
            item = self._queue.get(timeout=until.left())
        except queue.Empty:
            self.close()
            raise CheckFailed(f"no answer within {until.seconds:.3g} s") from None
        if isinstance(item, Exception):
            self.close()
            raise CheckFailed(describe(item, self.timeout)) from None
        return item

    def response(self, until: Until) -> requests.Response:
        if self._response is None:
            self._response = self._next(until)
        return self._response

    def next_chunk(self, until: Until) -> bytes | None:
        """The next piece of the body; None once it has ended."""
        self.response(until)
        item = self._next(until)
        return None if item is _END else item

    def read_body(self, until: Until, limit: int = BODY_LIMIT) -> bytes:
        parts: list[bytes] = []
        size = 0
        while (chunk := self.next_chunk(until)) is not None:
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                self.close()
                raise CheckFailed(f"answer larger than {limit / 1048576:g} MiB")
        return b"".join(parts)

    def reply(self, until: Until) -> Reply:
        response = self.response(until)
        body = self.read_body(until)
        return Reply(response.status_code, response.headers, body, time.monotonic() - self.started)

    def close(self) -> None:
        """Shut the socket so a helper blocked in a read returns at once, then release it."""
        if self._closed:
            return
        self._closed = True
        response = self._response
        if response is None:
            return
        connection = getattr(response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        response.close()


class Http:
    """A session plus the check's per-request timeout and overall deadline."""

    def __init__(self, timeout: float, deadline: Deadline, verify: bool | str = True, headers: dict | None = None):
        self.timeout = timeout
        self.deadline = deadline
        self.verify = verify  # passed per request: requests lets REQUESTS_CA_BUNDLE beat session.verify
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers.update(headers or {})

    def until(self) -> Until:
        """When the next single exchange must be done by."""
        seconds = self.deadline.limit(self.timeout)
        return Until(time.monotonic() + seconds, seconds)

    def start(self, method: str, url: str, **kwargs: Any) -> Exchange:
        return Exchange(self.session, method, url, self.deadline.limit(self.timeout), verify=self.verify, **kwargs)

    def fetch(self, method: str, url: str, **kwargs: Any) -> Reply:
        until = self.until()
        exchange = self.start(method, url, **kwargs)
        try:
            return exchange.reply(until)
        finally:
            exchange.close()

    def close(self) -> None:
        self.session.close()


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests and urllib3 nest them deeply)."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])


def describe(exc: BaseException, timeout: float) -> str:
    """A few words for a failed exchange; never the URL, which may hold a token."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted: {cause.verify_message}"
    kinds: list[tuple[type[BaseException], str]] = [
        (requests.exceptions.ConnectTimeout, f"no connection within {timeout:g} s"),
        (requests.exceptions.ReadTimeout, f"no answer within {timeout:g} s"),
        (ConnectionRefusedError, "connection refused"),
        (socket.gaierror, "host name not found"),
        (ConnectionResetError, "connection reset by the server"),
        (ssl.SSLError, "TLS handshake failed"),
        (requests.exceptions.ChunkedEncodingError, "the server broke off its answer"),
        (http.client.HTTPException, "malformed HTTP answer (headers too long or too many?)"),
        (requests.exceptions.ConnectionError, "connection failed"),
        (OSError, "network error"),
    ]
    for kind, words in kinds:
        if any(isinstance(cause, kind) for cause in causes):
            return words
    return f"request failed ({type(exc).__name__})"


def hint(reply: Reply) -> str:
    """What came back, in a few words: the page title of an HTML page, the start of anything else."""
    text = reply.text().strip()
    if not text:
        return "empty body"
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title or reply.content_type == "text/html" or text.startswith("<"):
        kind = "nginx error page" if "nginx" in text.lower() else "HTML page"
        return f"{kind} '{title.group(1).strip()}'" if title else kind
    return f"{reply.content_type or 'body'} {text[:60]!r}"
