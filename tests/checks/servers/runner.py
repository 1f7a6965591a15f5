"""Run an ASGI app with uvicorn on a thread, or a socket that never answers.

The socket is bound before the app is built, so apps that must know their own URL
(the OAuth metadata does) get it, and there is no race for the port.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import uvicorn


def _bound_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextmanager
def serve(build: Callable[[str], Any], *, certfile: str | None = None, keyfile: str | None = None) -> Iterator[str]:
    """Serve `build(base_url)` until the block ends; yields the base URL."""
    sock = _bound_socket()
    base = f"{'https' if certfile else 'http'}://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(build(base), log_level="error", ssl_certfile=certfile, ssl_keyfile=keyfile,
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started:
        if time.monotonic() - started > 20 or not thread.is_alive():
            raise RuntimeError(f"test server {base} did not start")
        time.sleep(0.01)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and reads requests but never answers: a hung app behind a proxy."""
    from .hostile import serving

    held: list[socket.socket] = []
    try:
        with serving(held.append) as url:
            yield url
    finally:
        for conn in held:
            conn.close()
