"""The sandbox NAS's Python side, for the end-to-end tests and the benchmark alike (its shell
side, which starts and stops the sandbox, is the scripts beside this file)."""
