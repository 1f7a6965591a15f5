"""Tests live in five groups: unit/ (pure logic: no processes, no sockets), cli/ (loopctl's own
processes run locally, no sandbox: verbs that stop before connecting, names read from git),
scripts/ (the NAS scripts run locally with bash: shellcheck, --help, the contract, Compose
detection), checks/ (HTTP checks against real local servers, hostile ones included) and rig/
(every verb end to end on the sandbox NAS started by rig/up.sh)."""
