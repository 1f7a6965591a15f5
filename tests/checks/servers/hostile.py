"""Servers that answer HTTP the way an attacker or a broken proxy might: without end, a byte
a second, with a body or headers of any size, a decompression bomb, escape sequences.

Plain sockets on 127.0.0.1 (an HTTP library would refuse to send most of this). The path's
first segment names the behaviour, so one server serves every test: `/{name}/...`. A name
starting with `get-` answers POST (and DELETE) with 404, so `inv mcp-check` falls through to
the legacy GET stream, where the behaviour then happens.
"""

from __future__ import annotations

import itertools
import json
import queue
import re
import socket
import threading
import time
import zlib
from contextlib import contextmanager
from typing import Callable, Iterator

Behaviour = Callable[[socket.socket, bytes], None]

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\r\n"
MESSAGE = b'event: message\ndata: {"jsonrpc": "2.0", "method": "notifications/message", "params": {}}\n\n'
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31mRed\x1b[0m \x9b1;1H\x07bell"


def _forever(conn: socket.socket, head: bytes, piece: bytes) -> None:
    """Send head, then piece after piece as fast as the client takes them."""
    conn.sendall(head)
    while True:
        conn.sendall(piece)


def endless_events(conn: socket.socket, request: bytes) -> None:
    _forever(conn, SSE_HEAD, MESSAGE * 512)


def endless_line(conn: socket.socket, request: bytes) -> None:
    """An event stream whose one data line never ends."""
    _forever(conn, SSE_HEAD + b"data: ", b"x" * 65536)


def endless_data(conn: socket.socket, request: bytes) -> None:
    """One event whose data lines never stop (no blank line ends it)."""
    _forever(conn, SSE_HEAD, b"data: " + b"y" * 1000 + b"\n")


def huge_body(conn: socket.socket, request: bytes) -> None:
    _forever(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",
             b"[" * 65536)


def huge_initialize(conn: socket.socket, request: bytes) -> None:
    """No event stream on GET; POST (initialize) answered as by huge_body."""
    if request.startswith(b"GET "):
        conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
    huge_body(conn, request)


def deep_json(conn: socket.socket, request: bytes) -> None:
    body = b"[" * 200_000
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n" % len(body) + body)


def huge_headers(conn: socket.socket, request: bytes) -> None:
    _forever(conn, b"HTTP/1.1 200 OK\r\n", b"X-Junk: " + b"a" * 8000 + b"\r\n")


def endless_header_line(conn: socket.socket, request: bytes) -> None:
    _forever(conn, b"HTTP/1.1 200 OK\r\nX-Junk: ", b"a" * 65536)


def gzip_bomb(conn: socket.socket, request: bytes) -> None:
    """A gzip body of zeros that never ends: a few KiB on the wire inflate to a MiB."""
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                 b"Connection: close\r\n\r\n" + zeros.compress(b"\0" * 1048576))
    while True:
        conn.sendall(zeros.compress(b"\0" * 1048576) + zeros.flush(zlib.Z_SYNC_FLUSH))


def drip(conn: socket.socket, request: bytes) -> None:
    """A byte a second from the status line on: each byte restarts a per-read timeout."""
    for byte in SSE_HEAD + MESSAGE * 1000:
        conn.sendall(bytes([byte]))
        time.sleep(1)


def drip_body(conn: socket.socket, request: bytes) -> None:
    conn.sendall(SSE_HEAD)
    while True:
        conn.sendall(b":")
        time.sleep(1)


def escapes(conn: socket.socket, request: bytes) -> None:
    body = f"<html><head><title>{ESCAPES}</title></head><body>down</body></html>".encode()
    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n" % len(body) + body)


def escaped_server(conn: socket.socket, request: bytes) -> None:
    """A Streamable HTTP MCP server whose name and version are escape sequences."""
    head, _, body = request.partition(b"\r\n\r\n")
    message = json.loads(body or b"{}")
    method = message.get("method")
    if method == "initialize":
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                  "serverInfo": {"name": "\x1b]0;owned\x07evil\x1b[2J", "version": "\x9b31m1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "\x1b[31mred", "inputSchema": {"type": "object"}}]}
    else:  # server/discover is not spoken here; notifications and DELETE are accepted
        conn.sendall(b"HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                     % (b"400 Bad Request" if method == "server/discover" else b"202 Accepted"))
        return
    answer = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n" % len(answer) + answer)


# MCP servers that speak the protocol but list more tools than anyone reads: the live release
# the deploy replaces may be compromised. name: (tools, characters of each one's description,
# whether a Content-Length tells the size). The 3 take 3 MiB; the 6600, just under 1 MiB.
LARGE_TOOL_LISTS = {"huge-tools": (3, 900000, False), "huge-tools-sized": (3, 900000, True),
                    "many-tools": (6600, 52, False)}
SENT: dict[str, float] = {}  # name: when the tools/list reply to it began to go out (monotonic)
_SESSIONS: dict[bytes, queue.Queue] = {}  # legacy transport: session id -> what its stream is to send
_session_ids = itertools.count(1)


def large_tool_list(name: str, request_id: int = 2) -> bytes:
    """The tools/list reply of the server `name` (a key of LARGE_TOOL_LISTS)."""
    tools, description, _ = LARGE_TOOL_LISTS[name]
    text = ('say "hi" {[,]} \\ ' * description)[:description]
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": {"tools": [
        {"name": f"tool_{i:05}", "description": text, "inputSchema": {"type": "object", "properties": {}}}
        for i in range(tools)]}}).encode()


def _mcp_answer(name: str, message: dict) -> bytes | None:
    """The JSON-RPC reply to `message`, None for a notification."""
    if "id" not in message:
        return None
    if message.get("method") == "tools/list":
        reply = large_tool_list(name, message["id"])
        SENT[name] = time.monotonic()
        return reply
    result = {"protocolVersion": message.get("params", {}).get("protocolVersion", "2025-03-26"),
              "capabilities": {"tools": {}}, "serverInfo": {"name": name, "version": "1"}}
    return json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()


def _large_tools(name: str, legacy: bool) -> Behaviour:
    """At `/NAME`, Streamable HTTP: JSON replies, the tools/list one large (with no length
    said, it ends when the connection closes). At `/sse-NAME`, the legacy transport: GET opens
    the stream, with an endpoint event, and what is POSTed there is answered on it."""

    def behaviour(conn: socket.socket, request: bytes) -> None:
        method, path = request.split(b" ", 2)[:2]
        message = json.loads(request.partition(b"\r\n\r\n")[2] or b"{}") if method == b"POST" else {}
        if legacy and method == b"GET":
            return _large_tools_stream(conn, f"/sse-{name}".encode())
        if legacy and method == b"POST" and path.split(b"/")[-1] in _SESSIONS:
            replies = _SESSIONS[path.split(b"/")[-1]]
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            if (answer := _mcp_answer(name, message)) is not None:
                replies.put(b"event: message\ndata: " + answer + b"\n\n")
            return
        if legacy or method != b"POST":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if (answer := _mcp_answer(name, message)) is None:
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        sized = message.get("method") != "tools/list" or LARGE_TOOL_LISTS[name][2]
        length = b"Content-Length: %d\r\n" % len(answer) if sized else b""
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sConnection: close\r\n\r\n"
                     % length + answer)

    return behaviour


def _large_tools_stream(conn: socket.socket, prefix: bytes) -> None:
    """A legacy session's stream: its endpoint event (a path on this server, under the
    behaviour's prefix), then the replies to what is POSTed there."""
    session = str(next(_session_ids)).encode()
    _SESSIONS[session] = replies = queue.Queue()
    try:
        conn.sendall(SSE_HEAD + b"event: endpoint\ndata: %s/session/%s\n\n" % (prefix, session))
        while True:
            conn.sendall(replies.get(timeout=30))
    except queue.Empty:
        pass
    finally:
        del _SESSIONS[session]


BEHAVIOURS: dict[str, Behaviour] = {f.__name__.replace("_", "-"): f for f in (
    endless_events, endless_line, endless_data, huge_body, huge_initialize, deep_json, huge_headers,
    endless_header_line, gzip_bomb, drip, drip_body, escapes, escaped_server)}
BEHAVIOURS.update({f"{prefix}{name}": _large_tools(name, bool(prefix))
                   for name in LARGE_TOOL_LISTS for prefix in ("", "sse-")})


def _read_request(conn: socket.socket) -> bytes:
    """Headers and, when it says how long, the body."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _serve(conn: socket.socket) -> None:
    with conn:
        try:
            conn.settimeout(120)
            request = _read_request(conn)
            method, _, rest = request.partition(b" ")
            name = rest.split(b" ", 1)[0].decode("latin-1").split("/")[1] if rest else ""
            if name.startswith("get-") and method != b"GET":
                conn.sendall(NOT_FOUND)
                return
            BEHAVIOURS.get(name.removeprefix("get-"), lambda c, r: c.sendall(NOT_FOUND))(conn, request)
        except OSError:
            pass  # the client gave up: that is the point


@contextmanager
def serving(handle) -> Iterator[str]:
    """Accept on a loopback port, one thread per connection running `handle(conn)`, until the
    block ends; yields the base URL."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@contextmanager
def hostile_server() -> Iterator[str]:
    """Serve every behaviour until the block ends; yields the base URL (add `/{name}`)."""
    with serving(_serve) as url:
        yield url


@contextmanager
def recording_proxy() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP proxy on loopback that records each request it is given and answers 502:
    where a token sent to another host would be seen on the way."""
    seen: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                seen.append(_read_request(conn))
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass

    with serving(serve) as url:
        yield url, seen
