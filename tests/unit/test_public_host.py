"""PUBLIC_HOST, the Host the MCP gate sends and the app sees behind the proxy, is the public
URL's host and port only: credentials written into PUBLIC_URL (`https://user:pass@host`) are
never written into a release (release.env on the NAS, root's but copied around), never sent as
`Host:`, and never printed in a refusal. Fed the real `config` output of both Composes, as
test_stackdef.py is; and the one redaction every printed error goes through (cli.fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopctl import cli, settings as settings_module, stackdef
from loopctl.errors import ConfigError, Refused
from loopctl.text import MASK, error_line, without_url_credentials

DATA = Path(__file__).parent / "data"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
USER, PASSWORD = "deploy-bot", "Tr0ub4dor-3x"


def prepared(major: int) -> stackdef.Prepared:
    """prepare.sh's output for the example app, as test_stackdef.py feeds it."""
    return stackdef.Prepared(major, (DATA / "example-raw.yml").read_text(), (DATA / f"example-v{major}.yml").read_text(),
                             (DATA / f"example-v{major}-literal.yml").read_text())


def release_for(tmp_path, public_url: str, major: int = 2) -> stackdef.Release:
    loaded = settings_module.load({"LOOP_ENV_FILE": "/dev/null", "PUBLIC_URL": public_url})
    return stackdef.build_release(prepared(major), loaded, COMMIT)


def assert_no_credentials(text: str) -> None:
    for part in (PASSWORD, f"{USER}:", f"{USER}@", "p%40ss", "p@ss"):
        assert part not in text, text


@pytest.mark.parametrize("major", [1, 2])
@pytest.mark.parametrize("public_url, host", [
    (f"https://{USER}:{PASSWORD}@mcp.example.com", "mcp.example.com"),
    (f"https://{USER}:{PASSWORD}@mcp.example.com:8443/base", "mcp.example.com:8443"),
    (f"https://{USER}@mcp.example.com", "mcp.example.com"),
    (f"https://{USER}:{PASSWORD}p%40ss@mcp.example.com", "mcp.example.com"),
    # An unencoded `@` in the password: the host is after the last one, as urlsplit reads it.
    (f"https://{USER}:{PASSWORD}p@ss@mcp.example.com", "mcp.example.com"),
    # Ports as the URL has them, default ones included; no credentials at all: unchanged.
    (f"https://{USER}:{PASSWORD}@mcp.example.com:443", "mcp.example.com:443"),
    ("https://mcp.example.com", "mcp.example.com"),
    ("http://127.0.0.1:8082", "127.0.0.1:8082"),
])
def test_public_host_is_the_host_and_port_only(tmp_path, major, public_url, host):
    release = release_for(tmp_path, public_url, major)
    assert release.fields["PUBLIC_HOST"] == host
    assert f"\nPUBLIC_HOST={host}\n" in release.release_env()
    assert_no_credentials(release.release_env())
    assert_no_credentials(" ".join(release.fields.values()))
    assert_no_credentials(release.stack_json())


# An IPv6 host keeps its brackets (as Host: needs them), which the NAS scripts' env files do not
# take today: refused, like any other character they refuse, and without the credentials.
@pytest.mark.parametrize("host", ["mcp.exa%mple.com", "mcp!example.com", "[2001:db8::1]:8080", "[::1]"])
def test_a_refused_public_host_names_public_url_without_its_credentials(tmp_path, host):
    with pytest.raises(ConfigError) as refused:
        release_for(tmp_path, f"http://{USER}:{PASSWORD}@{host}/mcp")
    message = str(refused.value)
    assert message.startswith(f"PUBLIC_HOST={host!r} from PUBLIC_URL has characters the NAS scripts refuse"), message
    assert_no_credentials(message)


def test_a_release_with_credentials_in_public_url_never_holds_them_anywhere(tmp_path):
    release = release_for(tmp_path, f"https://{USER}:{PASSWORD}@mcp.example.com:8443")
    everything = release.release_env() + release.stack_json() + repr(release.fields) + "\n".join(release.notes)
    assert_no_credentials(everything)


# --- the one redaction every printed error goes through -------------------------------------

def test_url_credentials_are_blanked_in_any_url():
    text = (f"fatal: unable to access 'https://{USER}:{PASSWORD}@git.example.com/app.git/': refused; "
            f"see http://{USER}@mcp.example.com:8443/x and ssh://git@example.com, not a@b or "
            f"https://mcp.example.com/a@b")
    assert without_url_credentials(text) == (
        f"fatal: unable to access 'https://{MASK}@git.example.com/app.git/': refused; "
        f"see http://{MASK}@mcp.example.com:8443/x and ssh://{MASK}@example.com, not a@b or "
        f"https://mcp.example.com/a@b")
    assert without_url_credentials(without_url_credentials(text)) == without_url_credentials(text)


def test_an_error_is_one_line_with_settings_secrets_and_url_credentials_blanked(tmp_path):
    loaded = settings_module.load({"LOOP_ENV_FILE": "/dev/null", "NAS_SUDO_PASSWORD": "sudo-pw-1",
                                   "PUBLIC_URL": f"https://{USER}:{PASSWORD}@mcp.example.com"})
    error = Refused(f"PUBLIC_URL https://{USER}:{PASSWORD}@mcp.example.com, and {PASSWORD} alone,\n"
                    f"the sudo password sudo-pw-1 \x1b[31mand https://bob:t0ken@git.example.com/x")
    shown = cli.fail("rebuild", error, loaded.secrets())
    assert shown.code == Refused.code
    assert shown.message == (f"inv rebuild: error: PUBLIC_URL https://{MASK}@mcp.example.com, and {MASK} alone, "
                             f"the sudo password {MASK} and https://{MASK}@git.example.com/x")
    assert error_line(str(error), loaded.secrets()) == shown.message.removeprefix("inv rebuild: error: ")
