"""HTTP-only checks behind `inv health` and `inv mcp-check`.

Why a subpackage: these verbs need no SSH settings and run from cron every few
minutes, so they import nothing from the SSH side and keep their own small modules.
"""
