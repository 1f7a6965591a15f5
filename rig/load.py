"""Load through the sandbox's proxy while a change runs: steady GET /health, each request on a
new connection, every failure counted (the tests' and the benchmark's measure of downtime)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .sandbox import get


@dataclass
class Load:
    """Steady GET /health through the proxy at `rate` requests a second, each on a new
    connection (as monitors and new clients do), counting every failure."""

    rate: int = 60
    threads: int = 4
    total: int = 0
    failures: list = field(default_factory=list)
    colors: set = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list = field(default_factory=list)

    def _work(self) -> None:
        interval = self.threads / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                status, headers, _ = get("/health", timeout=5)
                error = None if status == 200 else f"HTTP {status}"
            except Exception as exc:  # every kind of failure counts
                error, headers = f"{type(exc).__name__}: {exc}", {}
            with self._lock:
                self.total += 1
                if error:
                    self.failures.append((time.time(), error))
                if headers.get("x-loop-color"):
                    self.colors.add(headers["x-loop-color"])
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> "Load":
        self.started = time.monotonic()
        self._workers = [threading.Thread(target=self._work, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join()
        self.seconds = time.monotonic() - self.started

    def cut_short(self, at: float) -> list:
        """The failures that were answers the api had begun to send when it was killed at `at`:
        the status line and headers came through the proxy, the body did not. Nothing can send
        such a request elsewhere (its client already holds part of an answer); every other kind
        of failure is one the proxy should have sent to the standby."""
        return [(when, error) for when, error in self.failures
                if error.startswith("IncompleteRead") and at <= when < at + 2]

    @property
    def per_second(self) -> float:
        return self.total / self.seconds
