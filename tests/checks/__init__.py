"""Tests of `inv health` and `inv mcp-check` (a package so helper modules get unique names)."""
