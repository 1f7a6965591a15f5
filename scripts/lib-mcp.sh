# shellcheck shell=bash
# Speaking MCP from the NAS, with curl: the deploy's gate before the switch and its
# verification after it. A release whose /health is fine but whose MCP is broken must never
# get traffic, and only a real handshake tells a working MCP server from a page that answers.
#
# mcp_tools BASE [COLOR] opens a session the way ChatGPT does through the proxy (same path,
# same forwarded headers), lists the tools and closes it: legacy HTTP+SSE (GET the stream,
# POST to the `endpoint` event's URL, replies on the stream), else Streamable HTTP
# (`initialize`, Mcp-Session-Id). Everything it reads comes from the app: bounded in time
# (MCP_CHECK_SECONDS) and size, never run, and only tool names that are plain words kept
# (the specification's characters, at most 128).
# Sourced, never run.

readonly MCP_MAX_BYTES=1048576

# mcp_curl ARGS...: one bounded request with the headers the proxy adds. PUBLIC_HOST (the
# release's) is the Host the app sees behind the proxy. A command, not a function, so that a
# stream run in the background is curl itself: killing it ends the request, and it never holds
# the deploy lock's descriptor.
mcp_curl_command() {
  MCP_CURL=(curl -sS --limit-rate 4M --max-filesize "$MCP_MAX_BYTES" -H 'X-Forwarded-Proto: http'
    -H 'X-Real-IP: 127.0.0.1' -H 'X-Forwarded-For: 127.0.0.1')
  [[ -z ${PUBLIC_HOST:-} ]] || MCP_CURL+=(-H "Host: $PUBLIC_HOST")
}
mcp_curl() { "${MCP_CURL[@]}" "$@" 9>&-; }

# The JSON-RPC messages loopctl sends: fixed text, nothing from the app in them.
mcp_message() {
  case $1 in
    initialize) printf '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"%s","capabilities":{},"clientInfo":{"name":"loopctl-gate","version":"1"}}}' "$2" ;;
    initialized) printf '{"jsonrpc":"2.0","method":"notifications/initialized"}' ;;
    tools) printf '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}' ;;
  esac
}

# Each reader below is one pass over what the app wrote, and over no more of it than
# MCP_MAX_BYTES: a reply over that is refused, never parsed.

# mcp_size FILE: its size in bytes (0 while there is none).
mcp_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# mcp_lines FILE: the lines of FILE's first MCP_MAX_BYTES that are complete: a stream that is
# still being written ends in half a line, which is read once it is whole.
mcp_lines() { { head -c "$MCP_MAX_BYTES" "$1" 2>/dev/null; echo; } | sed '$d'; }

# mcp_body FILE CURL_ARGS...: one request, its body in FILE, of which curl writes no more than
# MCP_MAX_BYTES and a byte: it ends as soon as `head` has that much, whether or not the body's
# length was said. Fails when the body is over MCP_MAX_BYTES (a Content-Length over it, curl
# refuses with 63, writing nothing).
mcp_body() {
  local file=$1
  shift
  { mcp_curl "$@" -o - 2>/dev/null || echo "$?" >"$file.rc"; } | head -c $((MCP_MAX_BYTES + 1)) >"$file"
  [[ $(cat "$file.rc" 2>/dev/null) != 63 ]] && (($(mcp_size "$file") <= MCP_MAX_BYTES))
}

# mcp_reply ID: the JSON-RPC reply with that id in the input (an event stream or a JSON body),
# printed as one line; fails while there is none.
mcp_reply() {
  grep -m 1 -aE "^(data: ?)?\{.*\"id\" ?: ?$1[,}]" | sed -E 's/^data: ?//'
}

# mcp_wait FILE ID DEADLINE_MS: wait for that reply (the stream grows as the server writes);
# fails at once when the stream is over MCP_MAX_BYTES.
mcp_wait() {
  local reply
  while :; do
    reply=$(mcp_lines "$1" | mcp_reply "$2") && [[ -n $reply ]] && { printf '%s\n' "$reply"; return 0; }
    (($(ms_now) < $3)) || return 1
    (($(mcp_size "$1") <= MCP_MAX_BYTES)) || return 1
    sleep 0.05
  done
}

# mcp_tool_names REPLY: the names of the tools in a tools/list reply, sorted, one a line. A
# small JSON walk (the NAS has no jq): the "name" strings of the objects in result.tools.
# Linear in the reply, in any awk (mawk, gawk, busybox): sed ends a line after each quote,
# backslash, bracket, brace and comma, so that awk reads each piece once and looks only at its
# last character; of a string it keeps no more than a name can be, of the nesting only the four
# levels down to a tool's name.
mcp_tool_names() {
  ((${#1} <= MCP_MAX_BYTES)) || return 1
  grep -q '"result"' <<<"$1" || return 1
  printf '%s\n' "$1" | LC_ALL=C sed 's/[]["\\{},]/&\n/g' | LC_ALL=C awk -F '\n' '
    {
      n = length($0)
      c = substr($0, n, 1)
      if (instr) {
        # In a string: its text up to 129 characters, as it is written (escapes kept).
        if (esc) { esc = 0; if (n == 1) { if (length(str) <= 128) str = str c; next } }
        if (c != "\"") { if (length(str) <= 128) str = str substr($0, 1, 129); if (c == "\\") esc = 1; next }
        if (length(str) <= 128) str = str substr($0, 1, n - 1)
        instr = 0
        if (depth > 4) next
        if (expect_key) { key = str; path[depth] = str; expect_key = 0 }
        else if (depth == 4 && key == "name" && path[1] == "result" && path[2] == "tools" && length(str) <= 128 && str ~ /^[A-Za-z0-9_.-]+$/) print str
      }
      else if (c == "\"") { instr = 1; str = "" }
      else if (c == "{" || c == "[") { if (++depth <= 4) { kind[depth] = path[depth] = c; expect_key = c == "{"; key = "" } }
      else if (c == "}" || c == "]") { if (--depth <= 4) { key = path[depth]; expect_key = 0 } }
      else if (c == "," && depth <= 4 && kind[depth] == "{") expect_key = 1
    }' | sort -u | grep . || return 1
}

# mcp_status FILE: the HTTP status and content type of a curl -D header dump, once all the
# headers are in ("0" until then).
mcp_status() {
  awk 'toupper($1) ~ /^HTTP\// { code = $2; type = ""; done = 0 } tolower($1) == "content-type:" { type = tolower($2) }
       /^\r?$/ { done = 1 }
       END { gsub(/[\r;]/, "", type); if (done && code) print code, type; else print 0 }' "$1" 2>/dev/null || echo 0
}

mcp_header() {
  awk -v name="$2:" 'tolower($1) == name { gsub(/\r/, "", $2); print $2 }' "$1" 2>/dev/null | tail -n 1
}

# mcp_tools BASE [COLOR]: MCP_TOOLS, the tools (one name a line) of the MCP server at BASE +
# APP_MCP_PATH; with COLOR, the answer must come from that color (X-Loop-Color, through the
# proxy). On failure, MCP_ERROR holds the reason in one line. MCP_AUTH is set when the server
# asks for authorization: it answered as MCP servers do, but loopctl has no token to list tools.
mcp_tools() {
  local base=$1 color=${2:-} dir rc=0
  MCP_ERROR="" MCP_AUTH="" MCP_TOOLS=""
  mcp_curl_command
  dir=$(mktemp -d)
  mcp_sse_tools "$base" "$dir" >"$dir/tools" || rc=$?
  if ((rc == 2)); then
    rc=0
    mcp_streamable_tools "$base" "$dir" >"$dir/tools" || rc=$?
  fi
  # shellcheck disable=SC2034  # the result, read by the callers
  MCP_TOOLS=$(cat "$dir/tools")
  if ((rc == 0)) && [[ -n $color ]]; then
    local served
    served=$(mcp_header "$dir/served" x-loop-color)
    [[ $served == "$color" ]] || { MCP_ERROR="the MCP session was served by '${served:-?}', not $color"; rc=1; }
  fi
  rm -rf "$dir"
  # What the server said is untrusted text: one printable line of it at most.
  MCP_ERROR=$(printable "$MCP_ERROR")
  return "$rc"
}

# mcp_sse_tools BASE DIR: the legacy transport. Exit 2: BASE does not speak it.
mcp_sse_tools() {
  local base=$1 dir=$2 pid deadline code status endpoint="" reply alive ended=0 what=initialize
  deadline=$(($(ms_now) + MCP_CHECK_SECONDS * 1000))
  "${MCP_CURL[@]}" -N -m "$MCP_CHECK_SECONDS" -H 'Accept: text/event-stream' -D "$dir/served" \
    -o "$dir/stream" "$base$APP_MCP_PATH" 2>/dev/null 9>&- &
  pid=$!
  # The endpoint event, or the answer that this is no event stream. Whether curl still runs is
  # read first: when it has ended, what it wrote is complete.
  while :; do
    alive=1
    kill -0 "$pid" 2>/dev/null || alive=0
    endpoint=$(mcp_endpoint "$dir/stream")
    [[ -z $endpoint ]] || break
    read -r code status < <(mcp_status "$dir/served")
    if ((code == 401 || code == 403)); then
      mcp_stop "$pid"
      MCP_AUTH=$code
      return 0
    elif ((code != 0)) && [[ $code != 200 || $status != text/event-stream ]]; then
      mcp_stop "$pid"
      MCP_ERROR="GET $APP_MCP_PATH answered $code${status:+ $status}"
      return 2
    elif ((!alive)) || (($(ms_now) >= deadline)) ||
      (($(mcp_size "$dir/stream") > MCP_MAX_BYTES)); then
      ((alive)) || wait "$pid" 2>/dev/null || ended=$?
      mcp_stop "$pid"
      # 63: curl refused a Content-Length over MCP_MAX_BYTES (before the headers' end).
      if ((ended == 63)); then MCP_ERROR="GET $APP_MCP_PATH: an answer over 1 MiB"
      elif ((code == 0 && !alive)) && (($(ms_now) < deadline)); then MCP_ERROR="GET $APP_MCP_PATH: could not connect"
      elif ((code == 0)); then MCP_ERROR="GET $APP_MCP_PATH: no answer within ${MCP_CHECK_SECONDS}s"
      else MCP_ERROR="GET $APP_MCP_PATH: no endpoint event in the stream's first ${MCP_CHECK_SECONDS}s or 1 MiB"; fi
      return 1
    fi
    sleep 0.05
  done
  # The endpoint is a path on the same server (or a URL of it): anything else is refused.
  [[ $endpoint != http://* ]] || endpoint=/${endpoint#http://*/}
  [[ $endpoint =~ ^/[A-Za-z0-9/_.~%=\&?-]{1,512}$ ]] || { mcp_stop "$pid"; MCP_ERROR="the endpoint event is not a plain path"; return 1; }
  if mcp_sse_post "$base$endpoint" "$(mcp_message initialize 2024-11-05)" &&
    reply=$(mcp_wait "$dir/stream" 1 "$deadline") && grep -q '"protocolVersion"' <<<"$reply" && what=tools/list &&
    mcp_sse_post "$base$endpoint" "$(mcp_message initialized)" &&
    mcp_sse_post "$base$endpoint" "$(mcp_message tools)" &&
    reply=$(mcp_wait "$dir/stream" 2 "$deadline"); then
    mcp_stop "$pid"
    mcp_tool_names "$reply" || { MCP_ERROR="tools/list failed: $(printable "${reply:0:160}")"; return 1; }
    return 0
  fi
  mcp_stop "$pid"
  # The replies come in the stream: over MCP_MAX_BYTES, so was the one awaited.
  if [[ -z $MCP_ERROR ]] && (($(mcp_size "$dir/stream") > MCP_MAX_BYTES)); then MCP_ERROR="$what reply over 1 MiB"; fi
  [[ -n $MCP_ERROR ]] || MCP_ERROR="the MCP handshake got no reply within ${MCP_CHECK_SECONDS}s${reply:+: $(printable "${reply:0:160}")}"
  return 1
}

# mcp_endpoint STREAM: the data of the stream's `endpoint` event ("" until it came).
mcp_endpoint() {
  mcp_lines "$1" | awk '/^event: ?endpoint\r?$/ { e = 1; next } e && /^data:/ { sub(/^data: ?/, ""); sub(/\r$/, ""); print; exit }'
}

# mcp_sse_post URL JSON: the server accepts it (202) and replies on the stream.
mcp_sse_post() {
  local code
  code=$(mcp_curl -m "$MCP_CHECK_SECONDS" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$2" "$1" 2>/dev/null) || true
  [[ $code == 2?? ]] || { MCP_ERROR="POST to the session's endpoint answered ${code:-nothing}"; return 1; }
}

mcp_stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# mcp_streamable_tools BASE DIR: Streamable HTTP (one POST each; a reply is JSON or a stream).
mcp_streamable_tools() {
  local base=$1 dir=$2 url=$1$APP_MCP_PATH code status session reply version=2025-03-26 over=""
  local -a accept=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
  mcp_body "$dir/init" -m "$MCP_CHECK_SECONDS" "${accept[@]}" -D "$dir/served" \
    --data-binary "$(mcp_message initialize "$version")" "$url" || over=1
  read -r code status < <(mcp_status "$dir/served")
  if ((code == 401 || code == 403)); then
    # shellcheck disable=SC2034  # read by the callers
    MCP_AUTH=$code
    return 0
  fi
  # A Content-Length over MCP_MAX_BYTES, curl refuses before the headers' end: no code.
  if [[ -n $over ]] && ((code == 0 || code == 200)); then MCP_ERROR="initialize reply over 1 MiB"; return 1; fi
  [[ $code == 200 ]] || { MCP_ERROR="$APP_MCP_PATH is not MCP: GET answered as no event stream, POST initialize answered ${code/#0/nothing}"; return 1; }
  reply=$(mcp_reply 1 <"$dir/init")
  grep -q '"protocolVersion"' <<<"$reply" || { MCP_ERROR="initialize failed: $(printable "${reply:0:160}")"; return 1; }
  session=$(mcp_header "$dir/served" mcp-session-id)
  [[ $session =~ ^[!-~]{0,256}$ ]] || { MCP_ERROR="the Mcp-Session-Id is not visible ASCII"; return 1; }
  local -a headers=("${accept[@]}" -H "MCP-Protocol-Version: $version")
  [[ -z $session ]] || headers+=(-H "Mcp-Session-Id: $session")
  mcp_curl -m "$MCP_CHECK_SECONDS" "${headers[@]}" -o /dev/null --data-binary "$(mcp_message initialized)" "$url" 2>/dev/null || true
  mcp_body "$dir/tools.reply" -m "$MCP_CHECK_SECONDS" "${headers[@]}" --data-binary "$(mcp_message tools)" "$url" || over=1
  reply=$(mcp_reply 2 <"$dir/tools.reply") || true
  [[ -z $session ]] || mcp_curl -m 3 "${headers[@]}" -o /dev/null -X DELETE "$url" 2>/dev/null || true
  [[ -z $over ]] || { MCP_ERROR="tools/list reply over 1 MiB"; return 1; }
  mcp_tool_names "$reply" || { MCP_ERROR="tools/list failed: $(printable "${reply:0:160}")"; return 1; }
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
