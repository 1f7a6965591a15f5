"""The MCP gate's readers (scripts/lib-mcp.sh), run with bash: tool names out of a tools/list
reply with no jq on the NAS, and the comparison a deploy prints."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MIB = 2**20


def bash(script: str, *args: str) -> str:
    done = subprocess.run(["bash", "-c", f'. "{REPO}/scripts/lib.sh"; . "{REPO}/scripts/lib-mcp.sh"; {script}',
                           "t", *args], capture_output=True, text=True, check=True)
    return done.stdout


# The awks the NAS may have: Debian's mawk, DSM's gawk or busybox. Each one found here is the
# `awk` of a PATH the tool names are read with.
AWKS = {"mawk": "mawk", "gawk": "gawk", "busybox": "busybox awk"}


@pytest.fixture(params=AWKS)
def awk(request, tmp_path) -> tuple[str, str]:
    """(name, a PATH whose awk is that one)."""
    command = AWKS[request.param]
    if not shutil.which(command.split()[0]):
        pytest.skip(f"no {request.param} here")
    (tmp_path / "awk").write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    (tmp_path / "awk").chmod(0o755)
    return request.param, f"{tmp_path}:{os.environ['PATH']}"


def tool_names(reply: str, path: str) -> list[str]:
    """The names mcp_tool_names reads in `reply` (given on stdin: an argument is at most 128 KiB);
    it fails when there is none."""
    done = subprocess.run(["bash", "-c", f'. "{REPO}/scripts/lib.sh"; . "{REPO}/scripts/lib-mcp.sh"; '
                           'mcp_tool_names "$(cat)"'], capture_output=True, text=True, input=reply,
                          env={**os.environ, "PATH": path})
    names = done.stdout.split()
    assert done.returncode == (0 if names else 1), done.stderr
    return names


def reply_of(tools: list, **result) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 2, "result": {"tools": tools, **result}})


def test_only_the_names_of_the_tools_themselves_count(awk):
    reply = ('{"jsonrpc":"2.0","id":2,"result":{"tools":['
             '{"description":"says \\"name\\":\\"fake\\" {[ ]}","inputSchema":{"properties":{"name":'
             '{"type":"string","name":"nested"}}},"name":"echo"},'
             '{ "name" : "vault.list-2", "annotations":{"name":"no"}},'
             '{"name":"bad name; rm -rf /"},{"name":"' + "x" * 129 + '"}],'
             '"name":"not-a-tool"}}')
    assert tool_names(reply, awk[1]) == ["echo", "vault.list-2"]


# reply: the names read from it, as JSON means them (escapes are not read: a name with one is no
# plain word).
SHAPES = [
    (reply_of([{"name": "b"}, {"name": "a"}, {"name": "a"}]), ["a", "b"]),
    ('{"result":{"tools":[{"name":"a"},{"name":"b"}]},"jsonrpc":"2.0","id":2}', ["a", "b"]),
    ('{\n  "jsonrpc": "2.0", "id": 2,\n  "result": {\n    "tools": [\n      {\n        "name"  :  "pretty"\n'
     '      }\n    ]\n  }\n}', ["pretty"]),
    ('{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a\\"b"},{"name":"a\\\\b"},{"name":"\\u0061"},'
     '{"na\\u006de":"x"},{"name":5},{"name":true}]}}', []),
    (reply_of([{"description": '\\", "name": "fake', "name": "real"}]), ["real"]),
    (reply_of([{"name": "x" * 128}, {"name": "y" * 129}, {"name": ""}]), ["x" * 128]),
    (reply_of([{"inputSchema": {"name": "deep", "a": [{"name": "deeper"}]}, "name": "top"}]), ["top"]),
    (reply_of([[{}, "name", "evil"], {"name": "ok"}]), ["ok"]),
    (reply_of([{"name": "a"}], other={"tools": [{"name": "not"}]}), ["a"]),
    ('{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"cut"},{"name":"of', ["cut"]),
]


@pytest.mark.parametrize("reply, names", SHAPES)
def test_tool_names_are_read_as_json_means_them(awk, reply, names):
    assert tool_names(reply, awk[1]) == names


def mib_of(kind: str) -> tuple[str, list[str]]:
    """A tools/list reply just under 1 MiB, the most there can be of what makes a parser slow,
    and the names in it."""
    room = MIB - 100
    head = '{"jsonrpc":"2.0","id":2,"result":{"tools":['
    tool = {"name": "t00000", "inputSchema": {"type": "object"}}
    many = [f"t{i:05}" for i in range((room - 60) // (len(json.dumps(tool)) + 2))]
    return {
        "many tools": (reply_of([{**tool, "name": name} for name in many]), many),
        "one long description": (reply_of([{"name": "long", "description": "x " * (room // 2)}]), ["long"]),
        "escaped quotes": (reply_of([{"name": "quotes", "description": '"' * (room // 2)}]), ["quotes"]),
        "escaped backslashes": (reply_of([{"name": "slashes", "description": "\\" * (room // 2)}]), ["slashes"]),
        "brackets in a string": (reply_of([{"name": "punct", "description": "{[,]}:" * (room // 6)}]), ["punct"]),
        "deep arrays": (head + "[" * room, []),
        "deep objects": (head + '{"a":' * (room // 5), []),
        "commas": (head + "1," * (room // 2) + "1]}}", []),
        "a string never closed": (head + '{"name":"' + '\\"' * (room // 2), []),
    }[kind]


LIMIT = {"busybox": 8.0}  # seconds for 1 MiB: busybox awk is several times slower a line


@pytest.mark.parametrize("kind", ["many tools", "one long description", "escaped quotes", "escaped backslashes",
                                  "brackets in a string", "deep arrays", "deep objects", "commas",
                                  "a string never closed"])
def test_reading_1_mib_of_tools_takes_well_under_a_second(awk, kind):
    reply, names = mib_of(kind)
    assert MIB - 200 < len(reply) <= MIB
    started = time.monotonic()
    assert tool_names(reply, awk[1]) == names
    seconds = time.monotonic() - started
    assert seconds < LIMIT.get(awk[0], 1.0), f"{seconds:.2f} s"


def test_a_reply_over_1_mib_is_not_read():
    reply, _ = mib_of("many tools")
    started = time.monotonic()
    assert tool_names(reply.replace('"type"', '"type"' + " " * MIB, 1), os.environ["PATH"]) == []
    assert time.monotonic() - started < 0.5


def test_an_error_reply_has_no_tools():
    reply = '{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no","data":{"tools":[{"name":"x"}]}}}'
    done = subprocess.run(["bash", "-c", f'. "{REPO}/scripts/lib.sh"; . "{REPO}/scripts/lib-mcp.sh"; '
                           'mcp_tool_names "$1"', "t", reply], capture_output=True, text=True)
    assert done.returncode != 0 and done.stdout == ""


def test_the_comparison_names_what_went_and_what_came():
    compare = 'mcp_compare "$1" "$2"; printf "%s|%s" "$MCP_COMPARED" "$MCP_REMOVED"'
    assert bash(compare, "echo\nvault_delete\nvault_list", "echo\nvault_list\nvault_move") == \
        "tools: 3 -> 3, removed: vault_delete, added: vault_move|vault_delete"
    assert bash(compare, "a\nb", "a\nb") == "tools: 2 -> 2|"
    assert bash(compare, "", "a\nb") == "tools: 2|"
