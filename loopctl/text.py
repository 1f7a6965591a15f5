"""Text others wrote, made safe to show or send: secrets blanked, terminal controls removed.

Why one module: the runner (NAS output), the checks (server answers) and the audit trail
(git config) all print or send text that someone else controls. One function blanks
secrets and one strips control characters, so no caller can drift from the others (two
copies of the redaction once differed, and a sudo password that began MCP_TOKEN left the
token's tail visible in one of them). Escape sequences could retitle the terminal, hide
lines or rewrite what was printed before them; here they never get that far.
"""

from __future__ import annotations

import json
import re
from typing import Iterable

from . import contract

MASK = "<redacted>"

# CSI (ESC [ ... final), OSC/DCS/PM/APC/SOS strings (up to BEL or ESC \, or the end of the line),
# the 8-bit CSI, then any other ESC plus the character it introduces.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|\x1b[ -/]*[0-~]?"
)
# C0 controls but tab and newline, DEL, C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` without escape sequences or control characters; tabs and newlines stay, since
    they give logs and tables their shape."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


def one_line(text: str, limit: int = 200) -> str:
    """Text someone else wrote (git config user.name, a server's answer, an error) as one
    printable line of at most `limit` characters, cut with an ellipsis."""
    flat = re.sub(r"\s+", " ", printable(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def script_error(output: str) -> str:
    """The reason a NAS script gave for stopping: the text of its last ERROR: line (lib.sh's
    `die`), or "" when it gave none."""
    errors = [line[len(contract.ERROR_PREFIX):] for line in output.splitlines()
              if line.startswith(contract.ERROR_PREFIX)]
    return errors[-1] if errors else ""


def redact(text: str, secrets: Iterable[str]) -> str:
    """Blank every secret in `text`, longest first (a secret that begins another must not
    leave the other's tail visible), also as spelled inside JSON (reports and webhook
    bodies are JSON, where quotes, backslashes and non-ASCII characters are escaped)."""
    spellings: set[str] = set()
    for secret in secrets:
        if secret:
            spellings |= {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, MASK)
    return text


# A URL's credentials (`scheme://user:pass@host`): whatever comes before the last `@` of its
# authority, which ends at a path, query, fragment, space, double quote or angle bracket.
_URL_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#\"<>]*@")


def without_url_credentials(text: str) -> str:
    """Every URL in `text` with its credentials blanked: `https://<redacted>@host`, whoever
    wrote the URL (a setting, a flag, git's or curl's own message)."""
    return _URL_CREDENTIALS.sub(rf"\1{MASK}@", text)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` as it may be shown or sent: control characters out first (so none can split a
    secret and hide it from the search), then every secret blanked."""
    secrets = [secret for secret in secrets if secret]
    return redact(printable(text), secrets + [printable(secret) for secret in secrets])


def error_line(text: str, secrets: Iterable[str], limit: int = 2000) -> str:
    """An error message as loopctl prints it, the one redaction every refusal and failure goes
    through: one printable line, the settings' secrets and every URL's credentials blanked
    (messages quote settings, flags and what the NAS or git said)."""
    return one_line(without_url_credentials(scrub(text, secrets)), limit)
