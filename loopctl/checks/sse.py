"""Server-Sent Events, parsed as the bytes arrive.

Why: both MCP transports answer with `text/event-stream` (the legacy one keeps a stream
open for the whole session), and the check must read events one at a time under its
own deadline rather than wait for a stream that may never end. Lines and events have a
size limit, so one endless line or an event that never ends cannot fill the memory.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from .http import CheckFailed, Exchange, Until

_LINE = re.compile(r"\r\n|\r|\n")
LINE_LIMIT = 1024 * 1024  # characters; an MCP message is a few KiB
STREAM_LIMIT = 1024 * 1024  # bytes of one stream, all its events together


@dataclass(frozen=True)
class Event:
    name: str
    data: str


class EventParser:
    """Incremental parser for the SSE wire format (fields, comments, multi-line data)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._name = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[Event]:
        text = self._buffer + self._decoder.decode(chunk)
        held = "\r" if text.endswith("\r") else ""  # may be the first half of a "\r\n"
        *lines, rest = _LINE.split(text[: len(text) - len(held)])
        self._buffer = rest + held
        if len(self._buffer) > LINE_LIMIT:
            raise CheckFailed(f"an event-stream line longer than {LINE_LIMIT / 1048576:g} MiB")
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
            self._size += len(value)
            if self._size > LINE_LIMIT:
                raise CheckFailed(f"an event larger than {LINE_LIMIT / 1048576:g} MiB")
        return None

    def _dispatch(self) -> Event | None:
        event = Event(self._name or "message", "\n".join(self._data)) if self._data else None
        self._name, self._data, self._size = "", [], 0
        return event


class EventStream:
    """The events of one streaming exchange, each awaited until a moment the caller picks. At
    most STREAM_LIMIT bytes of it are read in all, as the deploy's gate does (scripts/lib-mcp.sh):
    a stream that sends without end is refused, not followed until the deadline."""

    def __init__(self, exchange: Exchange):
        self.exchange = exchange
        self._parser = EventParser()
        self._pending: list[Event] = []
        self._read = 0

    def next(self, until: Until) -> Event:
        while not self._pending:
            chunk = self.exchange.next_chunk(until)
            if chunk is None:
                raise CheckFailed("the stream ended")
            self._read += len(chunk)
            if self._read > STREAM_LIMIT:
                self.exchange.close()
                raise CheckFailed(f"answer larger than {STREAM_LIMIT / 1048576:g} MiB")
            self._pending.extend(self._parser.feed(chunk))
        return self._pending.pop(0)

    def close(self) -> None:
        self.exchange.close()
