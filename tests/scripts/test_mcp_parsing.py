"""The MCP gate's readers (scripts/lib-mcp.sh), run with bash: tool names out of a tools/list
reply with no jq on the NAS, and the comparison a deploy prints."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bash(script: str, *args: str) -> str:
    done = subprocess.run(["bash", "-c", f'. "{REPO}/scripts/lib.sh"; . "{REPO}/scripts/lib-mcp.sh"; {script}',
                           "t", *args], capture_output=True, text=True, check=True)
    return done.stdout


def test_only_the_names_of_the_tools_themselves_count():
    reply = ('{"jsonrpc":"2.0","id":2,"result":{"tools":['
             '{"description":"says \\"name\\":\\"fake\\" {[ ]}","inputSchema":{"properties":{"name":'
             '{"type":"string","name":"nested"}}},"name":"echo"},'
             '{ "name" : "vault.list-2", "annotations":{"name":"no"}},'
             '{"name":"bad name; rm -rf /"},{"name":"' + "x" * 129 + '"}],'
             '"name":"not-a-tool"}}')
    assert bash('mcp_tool_names "$1"', reply).split() == ["echo", "vault.list-2"]


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
