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
