# shellcheck shell=bash
# Speaking MCP from the NAS, with curl: the deploy's gate before the switch and its
# verification after it. A release whose /health is fine but whose MCP is broken must never
# get traffic, and only a real exchange tells a working MCP server from a page that answers.
#
# It opens the way `inv mcp-check` does (loopctl/checks/mcp.py), by the 2026-07-28
# specification's backward-compatibility rules: a `server/discover` POST first (2026-07-28: one
# self-contained POST per request, no session); on a 4xx without a 2026-07-28 error, the
# `initialize` handshake over Streamable HTTP (Mcp-Session-Id, ended by a DELETE); on a 4xx
# again, the deprecated HTTP+SSE transport (GET the stream, POST to its `endpoint` event's URL,
# replies on the stream). Then `tools/list`, page by page. tests/checks/test_mcp_agree.py runs
# one table of servers against both and requires the same verdict from each.
#
# Everything it reads comes from the app: bounded in time (MCP_CHECK_SECONDS for the whole
# exchange) and size (each reply MCP_MAX_BYTES, MCP_TOOL_PAGES pages), never run, and only tool
# names that are plain words kept (the specification's characters, at most 128).
# Sourced, never run.

readonly MCP_MAX_BYTES=1048576 MCP_TOOL_PAGES=50
readonly MCP_MODERN=2026-07-28
# The revisions before it that open with `initialize`, newest first (as mcp_protocol.py).
readonly MCP_HANDSHAKE_VERSIONS="2025-11-25 2025-06-18 2025-03-26 2024-11-05"

# mcp_curl_command: MCP_CURL, curl bounded in size with the headers the proxy adds. PUBLIC_HOST
# (the release's) is the Host the app sees behind the proxy. A command, not a function, so that
# a stream run in the background is curl itself: killing it ends the request, and it never
# holds the deploy lock's descriptor.
mcp_curl_command() {
  MCP_CURL=(curl -sS --limit-rate 4M --max-filesize "$MCP_MAX_BYTES" -H 'X-Forwarded-Proto: http'
    -H 'X-Real-IP: 127.0.0.1' -H 'X-Forwarded-For: 127.0.0.1')
  [[ -z ${PUBLIC_HOST:-} ]] || MCP_CURL+=(-H "Host: $PUBLIC_HOST")
}
mcp_curl() { "${MCP_CURL[@]}" "$@" 9>&-; }

# mcp_left: seconds left of the exchange's deadline (MCP_DEADLINE, ms), as curl's -m takes them;
# fails when none are.
mcp_left() {
  local ms=$((MCP_DEADLINE - $(ms_now)))
  ((ms > 0)) || return 1
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# mcp_message KIND ARGS: the JSON-RPC messages loopctl sends, fixed text: nothing from the app
# is in them but a tools/list cursor, checked to be a plain word first.
#   discover | initialize | initialized | tools ID [CURSOR] (2026-07-28's when MCP_WIRE=modern)
mcp_message() {
  local meta params
  meta='"_meta":{"io.modelcontextprotocol/protocolVersion":"'$MCP_MODERN'","io.modelcontextprotocol/clientInfo":{"name":"loopctl-gate","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}'
  case $1 in
    discover) printf '{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{%s}}' "$meta" ;;
    initialize) printf '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"%s","capabilities":{},"clientInfo":{"name":"loopctl-gate","version":"1"}}}' "${MCP_HANDSHAKE_VERSIONS%% *}" ;;
    initialized) printf '{"jsonrpc":"2.0","method":"notifications/initialized"}' ;;
    tools)
      params=${3:+'"cursor":"'$3'"'}
      [[ $MCP_WIRE != modern ]] || params+=${params:+,}$meta
      printf '{"jsonrpc":"2.0","id":%d,"method":"tools/list","params":{%s}}' "$2" "$params"
      ;;
  esac
}

# --- reading what the app wrote: each reader one pass over no more than MCP_MAX_BYTES ----------

# mcp_size FILE: its size in bytes (0 while there is none).
mcp_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# mcp_lines FILE: the lines of FILE's first MCP_MAX_BYTES that are complete: a stream that is
# still being written ends in half a line, which is read once it is whole.
mcp_lines() { { head -c "$MCP_MAX_BYTES" "$1" 2>/dev/null; echo; } | sed '$d'; }

# mcp_flat: one JSON document on stdin, its scalars out as PATH<TAB>TYPE<TAB>VALUE lines
# ("result.tools[].name", "error.code"): keys joined by ".", array elements as "[]"; TYPE s for a
# string (as written, escapes kept, at most 256 characters of it), b for a number, true, false
# or null (as they are); o and a (no value) where an object or an array begins. The first six levels only, and a key's characters that would make another path ([ ] .
# and tab) become "?". A line of one RS character (\036) ends each document. Linear in any awk (mawk, gawk, busybox): sed ends a line after each quote,
# backslash, bracket, brace, comma and colon, so that awk reads each piece once and looks only
# at its last character.
mcp_flat() {
  LC_ALL=C sed 's/[]["\\{},:]/&\n/g' | LC_ALL=C awk 'BEGIN { at = -1 }
    # The path of the current level, worked out again only after the level or a key changed.
    function here(   p, i) {
      if (at == depth) return path
      p = ""; for (i = 1; i <= depth; i++) p = p (kind[i] == "[" ? "[]" : (i > 1 ? "." : "") key[i])
      at = depth; path = p; return p
    }
    function emit(type, value) { if (depth <= 6) printf "%s\t%s\t%s\n", here(), type, value }
    {
      n = length($0); c = substr($0, n, 1)
      if (instr) {
        if (esc) { esc = 0; if (n == 1) { if (length(str) <= 256) str = str c; next } }
        if (c != "\"") { if (length(str) <= 256) str = str substr($0, 1, 257); if (c == "\\") esc = 1; next }
        if (length(str) <= 256) str = str substr($0, 1, n - 1)
        instr = 0
        if (kind[depth] == "{" && want_key) { gsub(/[][.\t]/, "?", str); key[depth] = substr(str, 1, 256); want_key = 0; at = -1 }
        else emit("s", substr(str, 1, 256))
        next
      }
      bare = substr($0, 1, n - 1); gsub(/[ \t\r]/, "", bare)
      if (c == "\"") { instr = 1; str = ""; next }
      if (c == ":") next
      if (bare != "" && depth > 0) emit("b", substr(bare, 1, 64))
      if (c == "{" || c == "[") {
        if (depth > 0) emit(c == "{" ? "o" : "a", "")
        # Below the sixth level nothing is printed: nothing of it is kept either.
        if (++depth <= 7) { kind[depth] = c; key[depth] = ""; want_key = c == "{"; at = -1 } else want_key = 0
      }
      else if (c == "}" || c == "]") { if (depth > 0 && --depth == 0) print "\036" }
      else if (c == "," && depth <= 7 && kind[depth] == "{") want_key = 1
    }'
}

# mcp_tool_names REPLY: the names of the tools in a tools/list reply (one JSON document),
# sorted, one a line: the "name" strings of the objects in result.tools that are plain words
# (the specification's characters, at most 128). Fails when there is none.
mcp_tool_names() {
  ((${#1} <= MCP_MAX_BYTES)) || return 1
  printf '%s\n' "$1" | mcp_flat | awk -F '\t' '$1 == "result.tools[].name" && $2 == "s" { print $3 }' |
    mcp_plain_names | grep .
}

# mcp_plain_names: of the names on stdin, the plain words, sorted, each once.
mcp_plain_names() { LC_ALL=C grep -xE '[A-Za-z0-9_.-]{1,128}' | LC_ALL=C sort -u || true; }

# mcp_get FLAT PATH [TYPE]: the values at PATH in mcp_flat's output, one a line (of that type).
mcp_get() { awk -F '\t' -v path="$2" -v type="${3:-}" '$1 == path && (type == "" || $2 == type) { print $3 }' <<<"$1"; }

# mcp_has FLAT PATH TYPE: there is such a value (an object: o, an array: a).
mcp_has() { awk -F '\t' -v path="$2" -v type="$3" '$1 == path && $2 == type { found = 1; exit } END { exit !found }' <<<"$1"; }

# mcp_json FILE: FILE's first MCP_MAX_BYTES as one JSON document, flat (mcp_flat).
mcp_json() { head -c "$MCP_MAX_BYTES" "$1" | tr '\n\r' '  ' | mcp_flat; }

# mcp_reply FILE TYPE ID: the JSON-RPC message answering request ID in a reply body (a JSON
# document, or an event stream's data lines), as mcp_flat's lines; fails while there is none.
# Linear: no line of the app's goes through bash's read (byte by byte), and the flattened body
# (FILE.flat) is read twice by awk, to find the message, then to print it.
mcp_reply() {
  local doc
  if [[ $2 == application/json ]]; then
    mcp_json "$1"
  else
    mcp_lines "$1" | grep -a '^data:' | sed -E 's/^data: ?//; s/\r$//' | mcp_flat
  fi >"$1.flat"
  doc=$(awk -F '\t' -v id="$3" '$0 == "\036" { n++; next } $1 == "id" && $2 == "b" && $3 == id { print n + 0; exit }' "$1.flat")
  [[ -n $doc ]] || return 1
  awk -v doc="$doc" '$0 == "\036" { if (n++ == doc) exit; next } n == doc' "$1.flat"
}

# mcp_status FILE: "CODE TYPE" of a curl -D header dump once all the headers are in (the last
# response's: a 100 Continue comes first), or "0".
mcp_status() {
  awk 'toupper($1) ~ /^HTTP\// { code = $2; type = ""; done = 0 } tolower($1) == "content-type:" { type = tolower($2) }
       /^\r?$/ { done = 1 }
       END { gsub(/[\r;]/, "", type); if (done && code) print code, type; else print 0 }' "$1" 2>/dev/null || echo 0
}

mcp_header() {
  awk -v name="$2:" 'tolower($1) == name { sub(/^[^:]*: */, ""); gsub(/\r/, ""); print }' "$1" 2>/dev/null | tail -n 1
}

# mcp_hint FILE TYPE: what came back, in a few words (as hint() in loopctl/checks/http.py): the
# title of an HTML page, else the start of the body.
mcp_hint() {
  local text title
  # Printable ASCII only: the rest could drive a terminal, or not be text at all.
  text=$(head -c 4096 "$1" 2>/dev/null | tr '\n\r\t' '   ' | LC_ALL=C tr -cd '\040-\176' | sed -E 's/^ +//; s/ +$//')
  [[ -n $text ]] || { echo "empty body"; return; }
  title=$(grep -oiE '<title[^>]*>[^<]*</title>' <<<"$text" | head -n 1 | sed -E 's/<[^>]*>//g; s/^ +//; s/ +$//')
  if [[ -n $title || $2 == text/html || $text == \<* ]]; then
    local kind="HTML page"
    [[ ${text,,} != *nginx* ]] || kind="nginx error page"
    [[ -z $title ]] || kind+=" '$title'"
    echo "$kind"
    return
  fi
  echo "${2:-body} '${text:0:60}'"
}

# mcp_post FILE JSON HEADERS...: POST one message to MCP_URL: the body in FILE (at most
# MCP_MAX_BYTES and a byte is written), the headers in FILE.h; MCP_CODE and MCP_TYPE of the
# answer (MCP_CODE 0: no answer). Fails when the body is over MCP_MAX_BYTES.
mcp_post() {
  local file=$1 json=$2 left
  shift 2
  MCP_CODE=0 MCP_TYPE=""
  left=$(mcp_left) || { MCP_ERROR="no answer within ${MCP_CHECK_SECONDS} s"; return 1; }
  { mcp_curl -m "$left" -D "$file.h" -o - -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' "$@" --data-binary "$json" "$MCP_URL" 2>/dev/null ||
    echo "$?" >"$file.rc"; } | head -c $((MCP_MAX_BYTES + 1)) >"$file"
  read -r MCP_CODE MCP_TYPE < <(mcp_status "$file.h")
  # 63: curl refused a Content-Length over MCP_MAX_BYTES.
  [[ $(cat "$file.rc" 2>/dev/null) != 63 ]] && (($(mcp_size "$file") <= MCP_MAX_BYTES))
}

# mcp_no_answer WHAT FILE: why a POST had no answer, in the check's words.
mcp_no_answer() {
  case $(cat "$2.rc" 2>/dev/null) in
    7) MCP_ERROR="$1: connection refused" ;;
    28 | "") MCP_ERROR="$1: no answer within ${MCP_CHECK_SECONDS} s" ;;
    *) MCP_ERROR="$1: the connection failed" ;;
  esac
}

# mcp_not_mcp FILE: a POST's answer that is no MCP at all, in the check's words.
mcp_not_mcp() {
  local what="POST /${MCP_URL#http://*/}"
  if ((MCP_CODE >= 500)); then MCP_ERROR="$what: server error HTTP $MCP_CODE ($(mcp_hint "$1" "$MCP_TYPE"))"
  elif ((MCP_CODE >= 300 && MCP_CODE < 400)); then MCP_ERROR="$what: redirected to $(mcp_header "$1.h" location); point the check there"
  else MCP_ERROR="$what: HTTP $MCP_CODE ($(mcp_hint "$1" "$MCP_TYPE")), not MCP"; fi
}

# mcp_rpc_error FLAT METHOD: "METHOD failed: JSON-RPC error CODE: MESSAGE" if FLAT is one.
mcp_rpc_error() {
  local code
  code=$(mcp_get "$1" error.code b | head -n 1)
  [[ -n $code ]] || return 1
  MCP_ERROR="$2 failed: JSON-RPC error $code: $(mcp_get "$1" error.message s | head -n 1)"
}

# --- the three openings: each 0 opened, 1 failed (MCP_ERROR), 2 not this one (MCP_FALLBACK),
# --- 3 authorization asked for (MCP_AUTH) -------------------------------------------------

mcp_open_modern() {
  local dir=$1 flat="" error supported known=""
  mcp_post "$dir/discover" "$(mcp_message discover)" -H "MCP-Protocol-Version: $MCP_MODERN" \
    -H 'Mcp-Method: server/discover' || { MCP_ERROR="server/discover: answer larger than 1 MiB"; return 1; }
  ((MCP_CODE != 0)) || { mcp_no_answer server/discover "$dir/discover"; return 1; }
  ((MCP_CODE != 401 && MCP_CODE != 403)) || { MCP_AUTH=$MCP_CODE; return 3; }
  flat=$(mcp_reply "$dir/discover" "$MCP_TYPE" 1) || flat=$(mcp_json "$dir/discover")
  error=$(mcp_get "$flat" error.code b | head -n 1)
  case $error in
    -32022)
      supported=$(mcp_get "$flat" 'error.data.supported[]' s | grep -xE '[0-9]{4}-[0-9]{2}-[0-9]{2}' | paste -sd, | sed 's/,/, /g')
      for version in $MCP_HANDSHAKE_VERSIONS; do [[ ", $supported, " != *", $version, "* ]] || known=1; done
      [[ -n $known ]] || { MCP_ERROR="server/discover: the server refused $MCP_MODERN and offers only ${supported:-nothing}, none of which the check speaks"; return 1; }
      MCP_FALLBACK="server/discover: the server offers $supported"
      return 2
      ;;
    -32020) mcp_rpc_error "$flat" server/discover; MCP_ERROR+=" (is a proxy dropping MCP headers?)"; return 1 ;;
    -32021) mcp_rpc_error "$flat" server/discover; return 1 ;;
  esac
  if ((MCP_CODE == 200)) && [[ -z $error && $(mcp_get "$flat" jsonrpc s) == 2.0 ]] && mcp_has "$flat" result o; then
    if mcp_get "$flat" 'result.supportedVersions[]' s | grep -qxF "$MCP_MODERN"; then
      MCP_TRANSPORT="Streamable HTTP" MCP_REVISION=$MCP_MODERN MCP_WIRE=modern
      return 0
    fi
    MCP_FALLBACK="server/discover: $MCP_MODERN not among the supported versions"
    return 2
  fi
  if ((MCP_CODE >= 400 && MCP_CODE < 500)) || [[ -n $error ]]; then MCP_FALLBACK="server/discover HTTP $MCP_CODE"; return 2; fi
  mcp_not_mcp "$dir/discover"
  return 1
}

# mcp_handshake_result FLAT: the InitializeResult checked as mcp_protocol.py does; MCP_REVISION.
mcp_handshake_result() {
  local version
  mcp_rpc_error "$1" initialize && return 1
  mcp_has "$1" result o || { MCP_ERROR="initialize: the answer is not a JSON-RPC result for request 1"; return 1; }
  version=$(mcp_get "$1" result.protocolVersion s | head -n 1)
  [[ " $MCP_HANDSHAKE_VERSIONS " == *" $version "* && -n $version ]] ||
    { MCP_ERROR="initialize: the server chose protocol version '$(printable "${version:0:40}")', which the check does not know"; return 1; }
  [[ -n $(mcp_get "$1" result.serverInfo.name s) ]] || { MCP_ERROR="initialize: the result has no serverInfo name"; return 1; }
  MCP_REVISION=$version
}

mcp_open_handshake() {
  local dir=$1 flat session
  mcp_post "$dir/init" "$(mcp_message initialize)" || { MCP_ERROR="initialize: answer larger than 1 MiB"; return 1; }
  ((MCP_CODE != 0)) || { mcp_no_answer initialize "$dir/init"; return 1; }
  ((MCP_CODE != 401 && MCP_CODE != 403)) || { MCP_AUTH=$MCP_CODE; return 3; }
  if ((MCP_CODE == 200)) && flat=$(mcp_reply "$dir/init" "$MCP_TYPE" 1); then
    mcp_handshake_result "$flat" || return 1
    session=$(mcp_header "$dir/init.h" mcp-session-id)
    [[ $session =~ ^[!-~]{0,256}$ ]] || { MCP_ERROR="the Mcp-Session-Id is not visible ASCII"; return 1; }
    MCP_HEADERS=(-H "MCP-Protocol-Version: $MCP_REVISION")
    [[ -z $session ]] || MCP_HEADERS+=(-H "Mcp-Session-Id: $session")
    MCP_TRANSPORT="Streamable HTTP" MCP_WIRE=handshake MCP_SESSION=$session
    mcp_post "$dir/initialized" "$(mcp_message initialized)" "${MCP_HEADERS[@]}" || true
    [[ $MCP_CODE == 200 || $MCP_CODE == 202 ]] || { MCP_ERROR="notifications/initialized: HTTP $MCP_CODE"; return 1; }
    return 0
  fi
  if ((MCP_CODE >= 400 && MCP_CODE < 500)); then MCP_FALLBACK="initialize HTTP $MCP_CODE"; return 2; fi
  mcp_not_mcp "$dir/init"
  return 1
}

# mcp_open_sse DIR: the stream runs in the background (MCP_STREAM_PID) into DIR/stream.
mcp_open_sse() {
  local dir=$1 code status alive endpoint="" ended=0 left path="/${MCP_URL#http://*/}" origin=${MCP_URL#http://}
  origin=http://${origin%%/*}
  left=$(mcp_left) || { MCP_ERROR="GET $path: no answer within ${MCP_CHECK_SECONDS} s"; return 1; }
  "${MCP_CURL[@]}" -N -m "$left" -H 'Accept: text/event-stream' -D "$dir/served" \
    -o "$dir/stream" "$MCP_URL" 2>/dev/null 9>&- &
  MCP_STREAM_PID=$!
  # The endpoint event, or the answer that this is no event stream. Whether curl still runs is
  # read first: when it has ended, what it wrote is complete.
  while :; do
    alive=1
    kill -0 "$MCP_STREAM_PID" 2>/dev/null || alive=0
    endpoint=$(mcp_lines "$dir/stream" | awk '/^event: ?endpoint\r?$/ { e = 1; next } e && /^data:/ { sub(/^data: ?/, ""); sub(/\r$/, ""); print; exit }')
    [[ -z $endpoint ]] || break
    read -r code status < <(mcp_status "$dir/served")
    if ((code == 401 || code == 403)); then
      MCP_AUTH=$code
      return 3
    elif ((code != 0)) && [[ $code != 200 || $status != text/event-stream ]]; then
      ((!alive)) || sleep 0.1
      MCP_FALLBACK="GET HTTP $code ($(mcp_hint "$dir/stream" "$status"))"
      return 2
    elif ((!alive)) || (($(ms_now) >= MCP_DEADLINE)) || (($(mcp_size "$dir/stream") > MCP_MAX_BYTES)); then
      ((alive)) || wait "$MCP_STREAM_PID" 2>/dev/null || ended=$?
      if ((ended == 63)); then MCP_ERROR="GET $path: answer larger than 1 MiB"
      elif ((code == 0 && !alive)) && (($(ms_now) < MCP_DEADLINE)); then MCP_ERROR="GET $path: connection refused"
      elif ((code == 0)); then MCP_ERROR="GET $path: no answer within ${MCP_CHECK_SECONDS} s"
      elif (($(mcp_size "$dir/stream") > MCP_MAX_BYTES)); then MCP_ERROR="GET $path: no endpoint event on the SSE stream (answer larger than 1 MiB)"
      else MCP_ERROR="GET $path: no endpoint event on the SSE stream (no answer within ${MCP_CHECK_SECONDS} s)"; fi
      return 1
    fi
    sleep 0.02
  done
  # The endpoint is a path on the same server (or a URL of it): anything else is refused.
  [[ $endpoint != http://* ]] || endpoint=/${endpoint#http://*/}
  [[ $endpoint =~ ^/[A-Za-z0-9/_.~%=\&?-]{1,512}$ ]] || { MCP_ERROR="the endpoint event is not a plain path"; return 1; }
  MCP_ENDPOINT=$origin$endpoint MCP_TRANSPORT="legacy HTTP+SSE" MCP_WIRE=sse
  mcp_sse_call "$dir" initialize 1 "$(mcp_message initialize)" || return 1
  mcp_handshake_result "$(cat "$dir/flat")" || return 1
  mcp_sse_post "$dir" notifications/initialized "$(mcp_message initialized)"
}

# mcp_sse_post DIR METHOD JSON: the server accepts it (200 or 202) and replies on the stream.
mcp_sse_post() {
  local code left
  left=$(mcp_left) || { MCP_ERROR="$2: no answer within ${MCP_CHECK_SECONDS} s"; return 1; }
  code=$(mcp_curl -m "$left" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$3" "$MCP_ENDPOINT" 2>/dev/null) || true
  [[ $code == 200 || $code == 202 ]] || { MCP_ERROR="$2: the message endpoint answered HTTP ${code:-nothing}"; return 1; }
}

# mcp_sse_call DIR METHOD ID JSON: POST it, and the reply with that id from the stream, flat,
# into DIR/flat. (Not run in $(...): MCP_ERROR must reach the caller.)
mcp_sse_call() {
  mcp_sse_post "$1" "$2" "$4" || return 1
  while :; do
    mcp_reply "$1/stream" text/event-stream "$3" >"$1/flat" && return 0
    if (($(mcp_size "$1/stream") > MCP_MAX_BYTES)); then MCP_ERROR="$2: no reply on the SSE stream (answer larger than 1 MiB)"; return 1; fi
    if (($(ms_now) >= MCP_DEADLINE)); then
      MCP_ERROR="$2: no reply on the SSE stream (no answer within ${MCP_CHECK_SECONDS} s)"
      return 1
    elif ! kill -0 "$MCP_STREAM_PID" 2>/dev/null; then
      MCP_ERROR="$2: no reply on the SSE stream (the stream ended)"
      return 1
    fi
    sleep 0.02
  done
}

# mcp_call DIR METHOD ID JSON: one request on the opened wire; its reply, flat, into DIR/flat.
mcp_call() {
  local dir=$1 method=$2 id=$3 json=$4
  [[ $MCP_WIRE != sse ]] || { mcp_sse_call "$dir" "$method" "$id" "$json"; return; }
  local -a headers=(${MCP_HEADERS[@]+"${MCP_HEADERS[@]}"})
  [[ $MCP_WIRE != modern ]] || headers=(-H "MCP-Protocol-Version: $MCP_MODERN" -H "Mcp-Method: $method")
  mcp_post "$dir/call" "$json" "${headers[@]}" || { MCP_ERROR="$method: answer larger than 1 MiB"; return 1; }
  ((MCP_CODE != 0)) || { mcp_no_answer "$method" "$dir/call"; return 1; }
  mcp_reply "$dir/call" "$MCP_TYPE" "$id" >"$dir/flat" && return 0
  MCP_ERROR="$method: HTTP $MCP_CODE ($(mcp_hint "$dir/call" "$MCP_TYPE"))"
  return 1
}

# mcp_list_tools DIR: every page of tools/list; the names, one a line, sorted, in DIR/tools.
mcp_list_tools() {
  local dir=$1 page cursor="" flat request=2
  : >"$dir/names"
  for ((page = 0; page < MCP_TOOL_PAGES; page++)); do
    mcp_call "$dir" tools/list "$request" "$(mcp_message tools "$request" "$cursor")" || return 1
    flat=$(cat "$dir/flat")
    mcp_rpc_error "$flat" tools/list && return 1
    mcp_has "$flat" result.tools a || { MCP_ERROR="tools/list: the result has no tools list"; return 1; }
    mcp_get "$flat" 'result.tools[].name' s | mcp_plain_names >>"$dir/names"
    cursor=$(mcp_get "$flat" result.nextCursor s | head -n 1)
    if [[ -z $cursor ]]; then
      LC_ALL=C sort -u "$dir/names" >"$dir/tools"
      return 0
    fi
    [[ $cursor =~ ^[A-Za-z0-9+/=_.:-]{1,256}$ ]] || { MCP_ERROR="tools/list: a cursor that is not a plain word"; return 1; }
    request=$((request + 1))
  done
  MCP_ERROR="tools/list: still paging after $MCP_TOOL_PAGES pages"
  return 1
}

# mcp_close: the session ended: the legacy stream stopped, a Streamable HTTP session deleted.
mcp_close() {
  local left
  if [[ -n ${MCP_STREAM_PID:-} ]]; then
    kill "$MCP_STREAM_PID" 2>/dev/null || true
    wait "$MCP_STREAM_PID" 2>/dev/null || true
  fi
  if [[ $MCP_WIRE == handshake && -n $MCP_SESSION ]] && left=$(mcp_left); then
    mcp_curl -m "$left" "${MCP_HEADERS[@]}" -o /dev/null -X DELETE "$MCP_URL" 2>/dev/null || true
  fi
  MCP_STREAM_PID=""
}

# mcp_reset: no result, no session, and MCP_CHECK_SECONDS from now: an exchange from the start.
mcp_reset() {
  # shellcheck disable=SC2034  # the results, read by the callers
  MCP_ERROR="" MCP_AUTH="" MCP_TOOLS="" MCP_TRANSPORT="" MCP_REVISION="" MCP_WIRE="" MCP_SESSION="" MCP_STREAM_PID=""
  MCP_OPENING="" MCP_FALLBACK="" MCP_HEADERS=() MCP_DEADLINE=$(($(ms_now) + MCP_CHECK_SECONDS * 1000))
}

# mcp_tools BASE [COLOR]: MCP_TOOLS, the tools (one name a line) of the MCP server at BASE +
# APP_MCP_PATH, and MCP_TRANSPORT and MCP_REVISION it spoke; with COLOR, the answer must come
# from that color (X-Loop-Color, through the proxy). On failure, MCP_ERROR holds the reason in
# one line. MCP_AUTH is set when the server asks for authorization: it answered as MCP servers
# do, but loopctl has no token to list tools.
mcp_tools() {
  local base=$1 color=${2:-} dir rc=0 opening left served
  local -a fallbacks=()
  MCP_URL=$base$APP_MCP_PATH
  mcp_reset
  mcp_curl_command
  dir=$(mktemp -d)
  # MCP_FIRST: how the release passed its gate, tried first (a verification saves the openings
  # before it). When it no longer answers so, the usual order from the start, with a deadline of
  # its own: at most twice MCP_CHECK_SECONDS then.
  rc=2
  if [[ -n ${MCP_FIRST:-} ]]; then
    opening=$MCP_FIRST
    "mcp_open_$opening" "$dir" && rc=0 || rc=$?
    if ((rc != 0 && rc != 3)); then
      mcp_close
      rm -rf "${dir:?}"/*
      mcp_reset
      rc=2
    fi
  fi
  if ((rc == 2)); then
    for opening in modern handshake sse; do
      MCP_FALLBACK=""
      rc=0
      "mcp_open_$opening" "$dir" || rc=$?
      ((rc == 2)) || break
      fallbacks+=("$MCP_FALLBACK")
    done
  fi
  # shellcheck disable=SC2034  # read by mcp_gate, which records it with the release
  ((rc != 0)) || MCP_OPENING=$opening
  # shellcheck disable=SC2034  # MCP_TOOLS: the result, read by the callers
  case $rc in
    0) if mcp_list_tools "$dir"; then MCP_TOOLS=$(cat "$dir/tools"); else rc=1; fi ;;
    2) MCP_ERROR="not an MCP endpoint: $(IFS=,; printf '%s' "${fallbacks[*]}" | sed 's/,/, /g')"; rc=1 ;;
    3) rc=0 ;;
  esac
  mcp_close
  if ((rc == 0)) && [[ -n $color ]]; then
    # Every answer of the exchange from that color.
    served=$(cat "$dir"/*.h "$dir/served" 2>/dev/null | awk 'tolower($1) == "x-loop-color:" { gsub(/\r/, "", $2); print $2 }' |
      sort -u | paste -sd, -)
    [[ $served == "$color" ]] || { MCP_ERROR="the MCP session was served by '${served:-?}', not $color"; rc=1; }
  fi
  rm -rf "$dir"
  # What the server said is untrusted text: one printable line of it at most.
  MCP_ERROR=$(printable "$MCP_ERROR")
  return "$rc"
}

# mcp_compare OLD NEW (one name a line each): MCP_COMPARED, "tools: 2 -> 1, removed: a,
# added: b" ("tools: 1" with no OLD), and MCP_REMOVED, the names gone.
mcp_compare() {
  local added
  MCP_REMOVED=$(comm -23 <(grep . <<<"$1" || true) <(grep . <<<"$2" || true) | paste -sd, | sed 's/,/, /g')
  added=$(comm -13 <(grep . <<<"$1" || true) <(grep . <<<"$2" || true) | paste -sd, | sed 's/,/, /g')
  if [[ -z $1 ]]; then
    MCP_COMPARED="tools: $(grep -c . <<<"$2" || true)"
    return
  fi
  MCP_COMPARED="tools: $(grep -c . <<<"$1" || true) -> $(grep -c . <<<"$2" || true)"
  [[ -z $MCP_REMOVED ]] || MCP_COMPARED+=", removed: $MCP_REMOVED"
  [[ -z $added ]] || MCP_COMPARED+=", added: $added"
}
