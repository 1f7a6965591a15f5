"""Tests live in three groups: unit/ (pure logic), checks/ (HTTP checks against real local
servers) and rig/ (every verb end to end on the sandbox NAS started by rig/up.sh)."""
