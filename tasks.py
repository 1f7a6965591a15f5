"""The verbs: `inv status`, `inv logs --tail 100`, `inv rebuild`, ...

This file is the table of verbs and their flags; the logic lives in `loopctl/`.
Modules are imported inside each verb so `inv --list` and the HTTP-only checks
start without loading SSH libraries.
"""

from invoke import task


@task
def config(c):
    """Show the effective settings and where each came from; secrets redacted."""
    from loopctl import verbs

    verbs.show_config()


# --- Checks: HTTP only, plugin exit codes 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN ---

CHECK_FLAGS = {
    "url": "base URL to check instead of PUBLIC_URL, e.g. https://mcp.example.com",
    "timeout": "seconds per HTTP request (overrides CHECK_TIMEOUT, default 5)",
    "json": "print one JSON object instead of the status line",
    "quiet": "print nothing when OK, so cron mails only on trouble",
}


@task(help={
    **CHECK_FLAGS,
    "retries": "retries with backoff after a failed /health request (overrides CHECK_RETRIES, default 2)",
    "no_alert": "check only: leave the state file alone, send no webhook alert and no ping",
})
def health(c, url=None, timeout=None, retries=None, json=False, quiet=False, no_alert=False):
    """Check /health, the JWKS and the certificate; alert on state changes (for cron).

    Prints one monitoring-plugin line; exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad settings).
    """
    from invoke import Exit

    from loopctl.checks import cli

    raise Exit(code=cli.health(url=url, timeout=timeout, retries=retries,
                               as_json=json, quiet=quiet, alert=not no_alert))


@task(help=CHECK_FLAGS)
def mcp_check(c, url=None, timeout=None, json=False, quiet=False):
    """Speak MCP to the endpoint as ChatGPT would: transport, handshake, tools, OAuth discovery.

    Prints one monitoring-plugin line; exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad settings).
    """
    from invoke import Exit

    from loopctl.checks import cli

    raise Exit(code=cli.mcp(url=url, timeout=timeout, as_json=json, quiet=quiet))
