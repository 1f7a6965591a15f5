"""MCP clients for the end-to-end tests and the benchmark, built on the official SDK: a session held open
through a change making tool calls, and fresh sessions opened one after another (what
ChatGPT does per tool call). Each runs in its own thread with its own event loop and
counts every failed call."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import asynccontextmanager

from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from .sandbox import PROXY

URL = f"http://{PROXY[0]}:{PROXY[1]}/mcp"


@asynccontextmanager
async def open_session(transport: str):
    """An SDK session through the proxy, ready for tool calls, on the example app's transport
    (its LOOP_MCP_TRANSPORT): sse is legacy HTTP+SSE; streamable and stateless open with
    `initialize` over Streamable HTTP; modern opens as ChatGPT's connectors now do, with
    2026-07-28's `server/discover` (that server knows nothing else)."""
    client = sse_client(URL, sse_read_timeout=900) if transport == "sse" else streamable_http_client(URL)
    async with client as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            if transport == "modern":
                await session.discover()
            else:
                await session.initialize()
            yield session


async def echo(session: ClientSession, text: str, timeout: float = 5) -> None:
    result = await asyncio.wait_for(session.call_tool("echo", {"text": text}), timeout)
    if result.is_error or result.content[0].text != text:
        raise AssertionError(f"echo answered {result.content!r}")


class McpClient(threading.Thread):
    """Base: a thread that runs `work` until stopped; `failures` holds (time, error) pairs."""

    def __init__(self, transport: str = "sse", interval: float = 0.25):
        super().__init__(daemon=True)
        self.transport, self.interval = transport, interval
        self.calls = 0
        self.failures: list[tuple[float, str]] = []
        self.ready = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self.work())
        except BaseException as exc:  # the whole session lost counts as a failure
            self.failures.append((time.time(), f"{type(exc).__name__}: {exc}"))
        finally:
            self.ready.set()

    async def work(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.start()
        assert self.ready.wait(20), f"{type(self).__name__} did not start"
        assert not self.failures, self.failures
        return self

    def __exit__(self, *exc) -> None:
        self._stop_event.set()
        self.join(30)


class HeldSession(McpClient):
    """One session opened before the change and kept: a tool call every `interval` seconds.
    It never re-initializes, so any call that reaches a color which does not know the
    session fails here."""

    async def work(self) -> None:
        async with open_session(self.transport) as session:
            self.ready.set()
            while not self._stop_event.is_set():
                self.calls += 1
                try:
                    await echo(session, f"held-{self.calls}")
                except Exception as exc:
                    self.failures.append((time.time(), f"call {self.calls}: {type(exc).__name__}: {exc}"))
                await asyncio.sleep(self.interval)


class FreshSessions(McpClient):
    """A new session for each tool call, one after another, as ChatGPT often does."""

    async def work(self) -> None:
        self.ready.set()
        while not self._stop_event.is_set():
            self.calls += 1
            try:
                async with open_session(self.transport) as session:
                    await echo(session, f"fresh-{self.calls}")
            except Exception as exc:
                self.failures.append((time.time(), f"session {self.calls}: {type(exc).__name__}: {exc}"))
            await asyncio.sleep(self.interval)
