"""`inv mcp-check`: would ChatGPT be able to talk to the MCP endpoint right now?

Why this speaks the protocol instead of grepping a page: a proxy error page, a login page
or a half-started app all answer HTTP, and only a real handshake tells them apart from a
working server. The opening follows the 2026-07-28 specification's backward-compatibility
rules: a modern `server/discover` POST first; on a 4xx without a recognized modern error
body, the `initialize` handshake over Streamable HTTP; on a 4xx again, the deprecated
HTTP+SSE transport (GET, `endpoint` event, POST there, replies on the stream). Then
`tools/list`, and the session is closed. A 401 anywhere leads to the OAuth discovery check.
"""

from __future__ import annotations

import ipaddress
import time
from urllib.parse import urljoin, urlsplit

from ..errors import ConfigError

from . import mcp_protocol as proto
from . import oauth
from .http import CheckFailed, Deadline, Http, Until, hint
from .mcp_wires import HandshakeWire, ModernWire, Posted, SseWire, post_message
from .plugin import Perf, Report, Status, plural
from .sse import EventStream

SERVICE = "LOOP MCP"
Wire = ModernWire | HandshakeWire | SseWire


class Fallback(Exception):
    """This opening is not the server's; the words say what it answered."""


class AuthChallenge(Exception):
    def __init__(self, status: int, challenge: str):
        super().__init__(status)
        self.status, self.challenge = status, challenge


def _refuse_auth(status: int, headers) -> None:
    if status in (401, 403):
        raise AuthChallenge(status, headers.get("www-authenticate", ""))


def _not_mcp(what: str, posted: Posted) -> CheckFailed:
    if posted.status >= 500:
        return CheckFailed(f"{what}: server error {posted.describe()}")
    if 300 <= posted.status < 400:
        return CheckFailed(f"{what}: redirected to {posted.headers.get('location', '?')}; point the check there")
    return CheckFailed(f"{what}: {posted.describe()}, not MCP")


def open_modern(http: Http, url: str, auth: dict[str, str]) -> tuple[Wire, proto.Handshake]:
    method = "server/discover"
    posted = post_message(http, url, proto.request(1, method, proto.modern_params(None)), {
        **auth, **ModernWire.routing_headers(method)})
    _refuse_auth(posted.status, posted.headers)
    error = proto.modern_error(posted.message)
    if error is not None and error["code"] == proto.UNSUPPORTED_VERSION:
        supported = [str(v) for v in (error.get("data") or {}).get("supported") or []]
        if not set(supported) & set(proto.HANDSHAKE_VERSIONS):
            raise CheckFailed(f"{method}: the server refused {proto.MODERN_VERSION} and offers only "
                              f"{', '.join(supported) or 'nothing'}, none of which the check speaks")
        raise Fallback(f"{method}: the server offers {', '.join(supported)}")
    if error is not None:
        proxy = " (is a proxy dropping MCP headers?)" if error["code"] == proto.HEADER_MISMATCH else ""
        raise CheckFailed(f"{proto.RpcError(method, error)}{proxy}")
    if posted.status == 200 and isinstance(posted.message, dict) and "result" in posted.message:
        result = proto.result_of(posted.message, method, 1)
        if proto.supports_modern(result):
            return ModernWire(http, url, auth), proto.handshake_from_discover(result, ModernWire.transport)
        raise Fallback(f"{method}: {proto.MODERN_VERSION} not among the supported versions")
    if 400 <= posted.status < 500 or proto.error_of(posted.message) is not None:
        raise Fallback(f"{method} HTTP {posted.status}")
    raise _not_mcp(f"POST {urlsplit(url).path}", posted)


def open_handshake(http: Http, url: str, auth: dict[str, str]) -> tuple[Wire, proto.Handshake]:
    posted = post_message(http, url, proto.request(1, "initialize", proto.initialize_params()), auth)
    _refuse_auth(posted.status, posted.headers)
    if posted.status == 200 and posted.message is not None:
        handshake = proto.handshake_from_initialize(proto.result_of(posted.message, "initialize", 1), "Streamable HTTP")
        return HandshakeWire(http, url, auth, posted.headers.get("mcp-session-id"), handshake.version), handshake
    if 400 <= posted.status < 500:
        raise Fallback(f"initialize HTTP {posted.status}")
    raise _not_mcp(f"POST {urlsplit(url).path}", posted)


def open_sse(http: Http, url: str, auth: dict[str, str]) -> tuple[Wire, proto.Handshake]:
    until = http.until()
    exchange = http.start("GET", url, headers={**auth, "Accept": "text/event-stream"})
    try:
        response = exchange.response(until)
    except CheckFailed as failure:
        raise CheckFailed(f"GET {urlsplit(url).path}: {failure}") from None
    if response.status_code != 200 or not response.headers.get("content-type", "").startswith("text/event-stream"):
        reply = exchange.reply(until)
        exchange.close()
        _refuse_auth(reply.status, reply.headers)
        raise Fallback(f"GET HTTP {reply.status} ({hint(reply)})")
    stream = EventStream(exchange)
    try:
        endpoint = _endpoint_event(stream, url, until)
        wire = SseWire(http, stream, endpoint, auth)
        return wire, proto.handshake_from_initialize(wire.call("initialize", proto.initialize_params()), wire.transport)
    except CheckFailed:
        stream.close()
        raise


def _endpoint_event(stream: EventStream, url: str, until: Until) -> str:
    while True:
        try:
            event = stream.next(until)
        except CheckFailed as failure:
            raise CheckFailed(f"GET {urlsplit(url).path}: no endpoint event on the SSE stream ({failure})") from None
        if event.name == "endpoint":
            endpoint = urljoin(url, event.data.strip())
            if urlsplit(endpoint)[:2] != urlsplit(url)[:2]:
                raise CheckFailed(f"the endpoint event points to another origin: {endpoint}")
            return endpoint


def connect(http: Http, url: str, auth: dict[str, str]) -> tuple[Wire, proto.Handshake]:
    """Open with the newest wire the server speaks, falling back as the specification says."""
    answers = []
    for opening in (open_modern, open_handshake, open_sse):
        try:
            wire, handshake = opening(http, url, auth)
        except Fallback as fallback:
            answers.append(str(fallback))
            continue
        if handshake.version in proto.HANDSHAKE_VERSIONS:
            try:
                wire.notify("notifications/initialized")
            except CheckFailed:
                wire.close()
                raise
        return wire, handshake
    raise CheckFailed(f"not an MCP endpoint: {', '.join(answers)}")


def list_tools(wire: Wire) -> list[str]:
    """The tools' names, every page read, sorted: what the deploy's gate compares between releases."""
    names: set[str] = set()
    cursor = None
    for _ in range(proto.TOOL_PAGES):
        page, cursor = proto.tools_page(wire.call("tools/list", {"cursor": cursor} if cursor else None))
        names.update(page)
        if cursor is None:
            return sorted(names)
    raise CheckFailed(f"tools/list: still paging after {proto.TOOL_PAGES} pages")


def check(report: Report, http: Http, url: str, auth: dict[str, str]) -> None:
    started = time.monotonic()
    wire, handshake = connect(http, url, auth)
    opened = time.monotonic()
    try:
        names = list_tools(wire)
    finally:
        wire.close()
    tools = len(names)
    timings = {"handshake": opened - started, "tools_list": time.monotonic() - opened}
    # Said in the OK line, so the operator knows before a connector drops it.
    deprecated = " (deprecated since 2025-03-26)" if handshake.transport == SseWire.transport else ""
    report.add(Status.OK, (
        f"{handshake.transport}{deprecated}, protocol {handshake.version}, server {handshake.server}, "
        f"{plural(tools, 'tool')}; handshake {timings['handshake'] * 1000:.0f} ms, "
        f"tools/list {timings['tools_list'] * 1000:.0f} ms"))
    report.perfdata += [Perf("handshake", round(timings["handshake"], 3), "s"), Perf("tools", tools)]
    report.details.update(
        transport=handshake.transport, protocol_version=handshake.version,
        server_name=handshake.server_name, server_version=handshake.server_version,
        capabilities=handshake.capabilities, tools=tools, tool_names=names,
        timings_ms={name: round(seconds * 1000, 1) for name, seconds in timings.items()},
    )


def refuse_token_in_clear(settings, url: str) -> None:
    """A bearer token over plain http to another machine can be read and replayed by anyone
    on the way; loopback (an SSH tunnel, a local proxy) never leaves this machine."""
    parts = urlsplit(url)
    if not settings.mcp_token or parts.scheme != "http" or settings.allow_insecure_token or is_loopback(parts.hostname):
        return
    raise ConfigError(f"MCP_TOKEN would be sent in clear text to http://{parts.hostname}: use https, "
                      f"or set ALLOW_INSECURE_TOKEN=1 to send it anyway")


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(settings, verify: bool | str) -> Report:
    url = settings.public_url + settings.mcp_path
    refuse_token_in_clear(settings, url)
    report = Report(SERVICE, details={"url": url})
    auth = {"Authorization": f"Bearer {settings.mcp_token}"} if settings.mcp_token else {}
    http = Http(settings.check_timeout, Deadline(settings.check_deadline), verify)
    started = time.monotonic()
    try:
        check(report, http, url, auth)
    except AuthChallenge as challenge:
        oauth.assess(report, http, url, challenge.status, challenge.challenge, token_sent=bool(auth))
    except CheckFailed as failure:
        report.add(Status.CRITICAL, str(failure))
    finally:
        http.close()
    report.perfdata.insert(0, Perf("time", round(time.monotonic() - started, 3), "s"))
    return report
