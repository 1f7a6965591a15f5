"""A package, so that pytest imports tests/rig as `tests.rig`: as a top-level `rig` it would
hide the repository's own rig/ package (the sandbox's helpers the tests and bench/ share)."""
